"""A run's metric records (metrics.jsonl, read by core.rundir.catalog.read_metrics) as numbers and tables:
the latest values, the training and validation frames, the smoothed and thinned curves the live view, the
Runs page's comparison and the report draw, and the records as CSV.

Pure functions: records go in, numbers and pandas tables come out; the dashboard words and draws them.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

MAX_CURVE_POINTS = 1000  # per series: what a chart a few hundred pixels wide can show


# ---------------------------------------------------------------------------------------------
# Latest values
# ---------------------------------------------------------------------------------------------

def latest(metrics: Sequence[Mapping[str, Any]], kind: str, key: str) -> float | None:
    """The newest value of `key` among records of `kind` (e.g. the last validation accuracy)."""
    for record in reversed(metrics):
        if record.get("kind") == kind and isinstance(record.get(key), (int, float)):
            return float(record[key])
    return None


def current_lr(metrics: Sequence[Mapping[str, Any]]) -> float | None:
    """The learning rate of the latest training record."""
    return latest(metrics, "train", "lr")


# ---------------------------------------------------------------------------------------------
# Frames and curves
# ---------------------------------------------------------------------------------------------

def ema_smooth(values: Iterable[float], weight: float) -> np.ndarray:
    """TensorBoard's smoothing: a debiased exponential moving average; weight 0 = raw, 0.99 = very smooth.

    Debiasing (dividing by 1 - weight^n) keeps the start of the curve where the data is instead of
    pulling it towards zero. Non-finite values are passed through and do not disturb the average.
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"Smoothing must be at least 0 and below 1, got {weight!r}.")
    values = np.asarray(list(values), dtype=np.float64)  # (N,)
    out = np.empty_like(values)
    last, count = 0.0, 0
    for i, v in enumerate(values):
        if not math.isfinite(v):
            out[i] = v
            continue
        last = last * weight + (1.0 - weight) * v
        count += 1
        out[i] = last / (1.0 - weight**count)
    return out


def train_frame(metrics: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Training records as a table: step, epoch (fractional), loss, acc, lr."""
    rows = [{k: r.get(k) for k in ("step", "epoch", "loss", "acc", "lr")} for r in metrics if r.get("kind") == "train"]
    return pd.DataFrame(rows, columns=["step", "epoch", "loss", "acc", "lr"]).astype(float)


def val_frame(metrics: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Validation records as a table: epoch, step, val_loss, val_acc."""
    rows = [{k: r.get(k) for k in ("epoch", "step", "val_loss", "val_acc")}
            for r in metrics if r.get("kind") == "val" and "val_acc" in r]
    return pd.DataFrame(rows, columns=["epoch", "step", "val_loss", "val_acc"]).astype(float)


def thin(frame: pd.DataFrame, max_points: int = MAX_CURVE_POINTS) -> pd.DataFrame:
    """At most `max_points` evenly spaced rows, first and last kept (as TensorBoard samples long runs).

    Smoothing happens before thinning, over every logged value, so the drawn curve is the same shape;
    a 10,000-step run then sends a thousand points a series to the browser, not ten thousand.
    """
    if len(frame) <= max_points:
        return frame
    keep = np.unique(np.linspace(0, len(frame) - 1, max_points).round().astype(int))
    return frame.iloc[keep]


def live_curves(metrics: Sequence[Mapping[str, Any]], smoothing: float = 0.0) -> pd.DataFrame:
    """Long table for the live charts: epoch, step, metric ('loss'|'accuracy'), split, kind, value.

    split is 'training' or 'validation'; kind is 'raw' (the training values as logged, drawn faintly)
    or 'curve' (training smoothed with `smoothing`, and validation, one point an epoch, never smoothed).
    """
    train, val = train_frame(metrics), val_frame(metrics)
    parts = []
    for metric, column in (("loss", "loss"), ("accuracy", "acc")):
        raw = train[["epoch", "step"]].assign(metric=metric, split="training", kind="raw", value=train[column])
        smooth = raw.assign(kind="curve", value=ema_smooth(train[column], smoothing))
        parts += [thin(raw), thin(smooth)]
    for metric, column in (("loss", "val_loss"), ("accuracy", "val_acc")):
        parts.append(val[["epoch", "step"]].assign(metric=metric, split="validation", kind="curve",
                                                   value=val[column]))
    columns = ["epoch", "step", "metric", "split", "kind", "value"]
    frames = [p[columns] for p in parts if len(p)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def overlay_curves(metrics_by_label: Mapping[str, Sequence[Mapping[str, Any]]],
                   smoothing: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Curves of several runs for comparison.

    Returns (per_epoch, per_step): per_epoch has run, epoch, val_acc, val_loss; per_step has run,
    step, loss (training loss, smoothed with `smoothing`).
    """
    epochs, steps = [], []
    for label, metrics in metrics_by_label.items():
        val, train = val_frame(metrics), train_frame(metrics)
        epochs.append(val[["epoch", "val_acc", "val_loss"]].assign(run=label))
        steps.append(thin(train[["step"]].assign(run=label, loss=ema_smooth(train["loss"], smoothing))))
    epoch_columns, step_columns = ["run", "epoch", "val_acc", "val_loss"], ["run", "step", "loss"]
    per_epoch = pd.concat(epochs, ignore_index=True) if epochs else pd.DataFrame(columns=epoch_columns)
    per_step = pd.concat(steps, ignore_index=True) if steps else pd.DataFrame(columns=step_columns)
    return per_epoch[epoch_columns], per_step[step_columns]


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------

def metrics_csv(metrics: Sequence[Mapping[str, Any]]) -> str:
    """Every metric record as CSV, one row a record, columns in a stable order (kind first)."""
    columns = ["kind", "epoch", "step", "loss", "acc", "lr", "val_loss", "val_acc", "test_loss", "test_acc",
               "seconds", "images_per_s", "time"]
    extra = sorted({k for r in metrics for k in r} - set(columns))
    return pd.DataFrame(list(metrics), columns=columns + extra).to_csv(index=False)
