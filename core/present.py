"""What the dashboard's Train, Runs, Data and Sweeps pages show, computed from run folders, datasets and sweeps.

Pure functions only: metric records (core.rundir.catalog.read_metrics) and summaries go in, tables, curves and
short sentences come out. The pages draw these; nothing here touches Streamlit, files or devices, so
every number on screen can be unit-tested without a browser (tests/test_present.py).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.rundir.catalog import RunSummary

if TYPE_CHECKING:  # only read here: the pages that import this module need not load Optuna for it
    from core.sweep import Param, SweepResults, TrialResult


# ---------------------------------------------------------------------------------------------
# Numbers and words
# ---------------------------------------------------------------------------------------------

MISSING = "–"  # what a number or table cell shows for a value not there (yet), rather than "None" or "nan"


def ordinal(n: int) -> str:
    """1 -> '1st', 2 -> '2nd', 11 -> '11th', 23 -> '23rd'."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def plural(n: int, word: str) -> str:
    """'1 epoch', '2 epochs', '1,000 points' (English nouns that take an s)."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def change_text(now: int, before: int, epoch_before: int) -> str:
    """How a count moved since an earlier epoch: 'down from 75 after epoch 2', 'the same as after epoch 2'."""
    if now == before:
        return f"the same as after epoch {epoch_before}"
    return f"{'down' if now < before else 'up'} from {before:,} after epoch {epoch_before}"


def queue_text(position: int | None) -> str:
    """What a queued run says about its place: 'Waiting: 2nd in line'."""
    if position is None:
        return "Waiting to start."
    if position == 0:
        return "Training now."
    return f"Waiting: {ordinal(position)} in line"


def format_duration(seconds: float | None) -> str:
    """A short human duration: '45 s', '3 min 05 s', '2 h 07 min'; '' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_count(n: int) -> str:
    """Parameter counts in words: '62,006' or '1.2 million'."""
    return f"{n / 1e6:.1f} million" if n >= 1_000_000 else f"{n:,}"


def data_label(source: str | None) -> str:
    """How a data source reads on screen."""
    if source == "cifar10":
        return "CIFAR-10"
    if source == "synthetic":
        return "Synthetic shapes"
    return source or ""


# ---------------------------------------------------------------------------------------------
# Progress of one run
# ---------------------------------------------------------------------------------------------


def progress_info(status: Mapping[str, Any], state: str) -> tuple[float, str]:
    """The progress bar of a run: fraction 0..1 and a line with epoch, step and time left."""
    fraction = float(status.get("progress") or 0.0)
    fraction = min(max(fraction, 0.0), 1.0)
    epochs = status.get("epochs") or 0
    done = status.get("epoch") or 0
    step, total = status.get("step") or 0, status.get("total_steps")
    if state == "completed":
        return 1.0, f"Finished: {plural(epochs, 'epoch')}."
    if state == "queued":
        return fraction, "Not started yet."
    epoch_now = min(done + 1, epochs) if state == "running" else done
    parts = [f"Epoch {epoch_now} of {epochs}", f"step {step} of {total}" if total else f"step {step}"]
    eta = status.get("eta_seconds")
    if state == "running" and isinstance(eta, (int, float)):
        parts.append(f"about {format_duration(eta)} left")
    return fraction, " · ".join(parts)


def current_lr(metrics: Sequence[Mapping[str, Any]]) -> float | None:
    """The learning rate of the latest training record."""
    for record in reversed(metrics):
        if record.get("kind") == "train" and isinstance(record.get("lr"), (int, float)):
            return float(record["lr"])
    return None


def latest(metrics: Sequence[Mapping[str, Any]], kind: str, key: str) -> float | None:
    """The newest value of `key` among records of `kind` (e.g. the last validation accuracy)."""
    for record in reversed(metrics):
        if record.get("kind") == kind and isinstance(record.get(key), (int, float)):
            return float(record[key])
    return None


# ---------------------------------------------------------------------------------------------
# Curves
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


MAX_CURVE_POINTS = 1000  # per series: what a chart a few hundred pixels wide can show


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


def created_text(created_at: float | None) -> str | None:
    """When a run was created, short: '24 Nov 15:30' (UTC, like the runs table); None when unknown."""
    if created_at is None:
        return None
    when = datetime.fromtimestamp(created_at, tz=timezone.utc)
    return f"{when.day} {when:%b %H:%M}"


def unique_labels(summaries: Sequence[RunSummary]) -> dict[str, str]:
    """run_id -> a short label for legends and pickers: the run's name, and where runs share a name,
    its creation time ("alpha · 24 Nov 15:30"); the run id only where that still clashes.

    The time is added only on a clash: most names tell runs apart alone, and a date on every label
    would crowd the legends.
    """
    names = Counter(s.name for s in summaries)
    labels = {s.run_id: s.name if names[s.name] == 1 else f"{s.name} · {created_text(s.created_at) or s.run_id}"
              for s in summaries}
    clashes = Counter(labels.values())  # same name, same minute: only the id is left to tell them apart
    return {run_id: label if clashes[label] == 1 else f"{label} · {run_id}" for run_id, label in labels.items()}


def run_labels(summaries: Sequence[RunSummary]) -> dict[str, str]:
    """run_id -> a run picker's label: its unique label and its current state ("alpha · running")."""
    names = unique_labels(summaries)
    return {s.run_id: f"{names[s.run_id]} · {s.state}" for s in summaries}


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


def metrics_csv(metrics: Sequence[Mapping[str, Any]]) -> str:
    """Every metric record as CSV, one row a record, columns in a stable order (kind first)."""
    columns = ["kind", "epoch", "step", "loss", "acc", "lr", "val_loss", "val_acc", "test_loss", "test_acc",
               "seconds", "images_per_s", "time"]
    extra = sorted({k for r in metrics for k in r} - set(columns))
    return pd.DataFrame(list(metrics), columns=columns + extra).to_csv(index=False)


def no_predictions_message(summary: RunSummary, split: str = "test") -> str:
    """One sentence saying why a run has no saved predictions of `split` ("test" or "val") yet."""
    if split == "val":
        if summary.config.get("val_fraction") == 0 and not summary.config.get("folds"):
            return ("This run kept no validation images (its validation share is 0), so only the final test "
                    "set can be shown.")
        return ("This run has no validation results yet: they are saved at the end of every epoch, so check "
                "back after the first one.")
    return {
        "queued": "This run is waiting to start: its test results are saved when its training finishes.",
        "running": "This run is still training: its test results are saved when it finishes (the validation "
                   "set shows the mistakes after each epoch meanwhile).",
        "failed": "This run failed before its final test, so it has no test results; the Runs page shows what "
                  "went wrong.",
        "stopped": "This run was stopped before its final test, so it has no test results; resume it on the "
                   "Train page to finish.",
        "pruned": "This sweep trial was pruned (its validation accuracy lagged behind the sweep's other trials), "
                  "so it has no test results; its validation epochs show its mistakes.",
        "interrupted": "This run ended before its final test, so it has no test results; resume it on the Train "
                       "page to finish.",
    }.get(summary.state, "This run has no saved test results (they may have been deleted), so there is nothing "
                         "to show.")


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------

RUNS_COLUMNS = ["Name", "Model", "Data", "State", "Best val. accuracy", "Test accuracy", "Epochs done",
                "Epochs planned", "Duration", "Device", "Started", "Problem", "Run id"]


def runs_table(summaries: Sequence[RunSummary]) -> pd.DataFrame:
    """One row a run, in the given order; accuracies stay fractions (0..1) for the table to format.

    Missing numbers stay empty (NaN, <NA>) so the columns still sort as numbers; the table shows them as
    MISSING through its placeholder. Missing words are MISSING here; an empty Problem means none."""
    rows = []
    for s in summaries:
        rows.append({
            "Name": s.name, "Model": s.model or MISSING, "Data": data_label(s.data), "State": s.state,
            "Best val. accuracy": s.best_val_acc, "Test accuracy": s.test_acc, "Epochs done": s.epoch,
            "Epochs planned": s.epochs, "Duration": format_duration(s.duration_s) or MISSING,
            "Device": s.device or MISSING,
            "Started": pd.to_datetime(s.created_at, unit="s") if s.created_at else pd.NaT,
            "Problem": s.error or "", "Run id": s.run_id,
        })
    table = pd.DataFrame(rows, columns=RUNS_COLUMNS)
    for column in ("Best val. accuracy", "Test accuracy"):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    for column in ("Epochs done", "Epochs planned"):
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("Int64")
    return table


def class_counts(classes: Sequence[str], splits: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Images per class in each split: one row a class, one column a split (e.g. train, validation, test)."""
    table = pd.DataFrame({"class": list(classes)})
    for split, labels in splits.items():
        table[split] = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))[: len(classes)]
    return table


def sample_per_class(labels: np.ndarray, per_class: int, seed: int) -> dict[int, np.ndarray]:
    """Up to `per_class` random positions of each class present in `labels` (same seed, same pick)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    picks = {}
    for cls in np.unique(labels):
        where = np.flatnonzero(labels == cls)
        picks[int(cls)] = np.sort(rng.choice(where, size=min(per_class, len(where)), replace=False))
    return picks


# ---------------------------------------------------------------------------------------------
# Sweeps: the page names settings with the Train page's words, passed in as `label` and `words`
# ---------------------------------------------------------------------------------------------

Label = Callable[[str], str]  # field -> its name in plain words
Words = Callable[[str, Any], str]  # (field, value) -> the value in plain words


def short_number(value: Any) -> str:
    """A setting's value, short: 0.0085, 1e-05, 512, adam."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def setting_value(field: str, value: Any, words: Words) -> str:
    return words(field, value) if isinstance(value, (str, bool)) else short_number(value)


def describe_param(param: Param, label: Label, words: Words) -> str:
    """'Learning rate from 0.0001 to 0.01 (log scale)', 'Optimiser: Adam (forgiving) or SGD ...'."""
    if param.choices is not None:
        return f"{label(param.field)}: {' or '.join(setting_value(param.field, c, words) for c in param.choices)}"
    scale = " (log scale)" if param.log else ""
    return f"{label(param.field)} from {short_number(param.low)} to {short_number(param.high)}{scale}"


def trial_accuracy(trial: TrialResult) -> float | None:
    """What a trial has reached: a completed one its best validation accuracy, a running or pruned one the
    accuracy it reported after its latest epoch; None for a failed one, or before the first epoch."""
    if trial.state == "completed":
        return trial.value
    if trial.state in ("running", "pruned"):
        return trial.last_value
    return None


def sweep_points(results: SweepResults) -> pd.DataFrame:
    """One row a trial, by number: `trial`, `state`, `accuracy` (trial_accuracy), `best` (the best completed
    accuracy up to this trial, NaN before the first) and each varied setting's raw value under its field name."""
    fields = [p.field for p in results.sweep.space]
    rows, best = [], math.nan
    for t in sorted(results.trials, key=lambda t: t.number):
        if t.state == "completed" and t.value is not None:
            best = t.value if math.isnan(best) else max(best, t.value)
        rows.append({"trial": t.number, "state": t.state, "accuracy": trial_accuracy(t), "best": best,
                     **{f: t.params.get(f) for f in fields}})
    frame = pd.DataFrame(rows, columns=["trial", "state", "accuracy", "best", *fields])
    for column in ("accuracy", "best"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def trials_table(results: SweepResults, label: Label, words: Words) -> pd.DataFrame:
    """The Sweeps page's table, one row a trial by number: its state, accuracy, settings (choices in words,
    numbers as numbers), epochs, run name and problem."""
    def shown(field: str, value: Any) -> Any:
        return words(field, value) if isinstance(value, (str, bool)) else value

    fields = [p.field for p in results.sweep.space]
    rows = []
    for t in sorted(results.trials, key=lambda t: t.number):
        rows.append({"Trial": t.number, "State": t.state, "Validation accuracy": trial_accuracy(t),
                     **{label(f): shown(f, t.params.get(f)) for f in fields},
                     "Epochs done": f"{t.epochs_done} of {t.epochs}" if t.epochs else str(t.epochs_done),
                     "Run": t.run_name or t.run_id or MISSING, "Problem": trial_problem(t)})
    columns = ["Trial", "State", "Validation accuracy", *map(label, fields), "Epochs done", "Run", "Problem"]
    table = pd.DataFrame(rows, columns=columns)
    table["Validation accuracy"] = pd.to_numeric(table["Validation accuracy"], errors="coerce")
    return table


STOPPED_TRIAL = "Stopped with the sweep; its run can be resumed on its own from the Train page."


def trial_problem(trial: TrialResult) -> str:
    """Why a trial failed, in one sentence ('' when it did not): its error, or that a stop request ended it."""
    if trial.error:
        return trial.error
    return STOPPED_TRIAL if trial.state == "failed" and trial.run_state == "stopped" else ""


def best_text(results: SweepResults, label: Label, words: Words) -> str | None:
    """'Trial #2: Learning rate 0.0085, Optimiser Adam (forgiving)'; None before a trial has completed."""
    best = results.best
    if best is None:
        return None
    settings = ", ".join(f"{label(p.field)} {setting_value(p.field, best.params.get(p.field), words)}"
                         for p in results.sweep.space)
    return f"Trial #{best.number}: {settings}"


def importance_frame(importances: Mapping[str, float], label: Label) -> pd.DataFrame:
    """One row a setting, most important first: `setting` (in words) and its `share` (0..1)."""
    frame = pd.DataFrame({"setting": [label(f) for f in importances], "share": list(importances.values())},
                         columns=["setting", "share"])
    return frame.sort_values("share", ascending=False, ignore_index=True)
