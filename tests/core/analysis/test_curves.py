"""A run's metric records as numbers and tables (core.analysis.curves): smoothing as TensorBoard does it,
the training and validation frames, the live and overlaid curves, the CSV."""
import io

import numpy as np
import pandas as pd
import pytest

from core.analysis import curves

METRICS = [
    {"kind": "train", "epoch": 0.5, "step": 2, "loss": 2.0, "acc": 0.2, "lr": 0.1, "time": 1.0},
    {"kind": "train", "epoch": 1.0, "step": 4, "loss": 1.0, "acc": 0.5, "lr": 0.05, "time": 2.0},
    {"kind": "val", "epoch": 1, "step": 4, "val_loss": 1.2, "val_acc": 0.6, "seconds": 3.0, "images_per_s": 10.0,
     "time": 2.1},
    {"kind": "train", "epoch": 1.5, "step": 6, "loss": 0.5, "acc": 0.8, "lr": 0.01, "time": 3.0},
    {"kind": "val", "epoch": 2, "step": 8, "val_loss": 0.9, "val_acc": 0.7, "seconds": 3.0, "images_per_s": 10.0,
     "time": 4.0},
    {"kind": "test", "epoch": 2, "step": 8, "test_loss": 0.95, "test_acc": 0.68, "time": 4.5},
]


def test_ema_smooth_matches_tensorboard():
    values = [1.0, 2.0, 3.0]
    w = 0.5
    # by hand: last = 0.5, 1.25, 2.125; debias 0.5, 0.75, 0.875
    assert curves.ema_smooth(values, w) == pytest.approx([1.0, 1.25 / 0.75, 2.125 / 0.875])
    assert curves.ema_smooth(values, 0.0) == pytest.approx(values)
    constant = curves.ema_smooth([3.0] * 20, 0.9)
    assert constant == pytest.approx([3.0] * 20), "debiasing keeps a constant curve where it is"
    with pytest.raises(ValueError):
        curves.ema_smooth(values, 1.0)


def test_ema_smooth_passes_non_finite_values_through():
    out = curves.ema_smooth([1.0, float("nan"), 1.0], 0.9)
    assert out[0] == 1.0 and np.isnan(out[1]) and out[2] == pytest.approx(1.0)
    assert len(curves.ema_smooth([], 0.6)) == 0


def test_frames_and_latest_values():
    train, val = curves.train_frame(METRICS), curves.val_frame(METRICS)
    assert list(train["step"]) == [2, 4, 6] and list(val["val_acc"]) == [0.6, 0.7]
    assert curves.current_lr(METRICS) == 0.01
    assert curves.latest(METRICS, "val", "val_acc") == 0.7
    assert curves.latest([], "val", "val_acc") is None and curves.current_lr([]) is None


def test_live_curves_has_raw_smoothed_and_validation_series():
    lines = curves.live_curves(METRICS, smoothing=0.5)
    loss = lines[lines.metric == "loss"]
    raw = loss[(loss.split == "training") & (loss.kind == "raw")]
    smooth = loss[(loss.split == "training") & (loss.kind == "curve")]
    val = loss[loss.split == "validation"]
    assert list(raw.value) == [2.0, 1.0, 0.5]
    assert list(smooth.value) == pytest.approx(list(curves.ema_smooth([2.0, 1.0, 0.5], 0.5)))
    assert list(val.epoch) == [1, 2] and list(val.value) == [1.2, 0.9]
    acc = lines[(lines.metric == "accuracy") & (lines.split == "validation")]
    assert list(acc.value) == [0.6, 0.7]
    assert curves.live_curves([]).empty


def test_overlay_curves_labels_each_run():
    per_epoch, per_step = curves.overlay_curves({"a": METRICS, "b": METRICS[:3]})
    assert list(per_epoch[per_epoch.run == "a"].val_acc) == [0.6, 0.7]
    assert list(per_epoch[per_epoch.run == "b"].epoch) == [1]
    assert list(per_step[per_step.run == "b"].loss) == [2.0, 1.0]
    empty_epoch, empty_step = curves.overlay_curves({})
    assert empty_epoch.empty and empty_step.empty


def test_metrics_csv_round_trips():
    table = pd.read_csv(io.StringIO(curves.metrics_csv(METRICS)))
    assert list(table["kind"]) == [r["kind"] for r in METRICS]
    assert table.loc[table.kind == "test", "test_acc"].item() == 0.68
    assert table.columns[0] == "kind"
