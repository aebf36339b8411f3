"""Where each file of a run lives: the only module that spells a run's file and folder names.

    runs/<id>/
      config.json                        the TrainConfig; the run can be rebuilt from it alone
      status.json                        state, progress, heartbeat, error (rewritten while it trains)
      meta.json                          name, creation time, host, sweep or K-fold membership
      metrics.jsonl                      one JSON record per logged step and per epoch, appended
      test_summary.json                  test accuracy, loss, per-class accuracy, timings
      checkpoints/last.pt                latest weights + optimiser + progress
      checkpoints/best.pt                the weights of the best validation accuracy so far
      predictions/val_labels.npz         validation labels and their train-split indices
      predictions/val_epoch_NNNN.npz     class probabilities on the validation split after epoch NNNN
      predictions/test.npz               final test evaluation: label, pred, probs, loss, index
      predictions/features_{test,train}.npz  penultimate-layer features (the feature map's input)
      predictions/map_test.npz           the test features laid out in 2-D
      predictions/kfold.json             the runs of a K-fold job started from this run
      predictions/oof_train.npz          their combined out-of-fold probabilities

Everything else reads and writes these paths through the functions below, so a new file gets its name
here once and the README's run-folder table has one source to be checked against.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

CONFIG = "config.json"
STATUS = "status.json"
META = "meta.json"
METRICS = "metrics.jsonl"
TEST_SUMMARY = "test_summary.json"
CHECKPOINTS = "checkpoints"
PREDICTIONS = "predictions"

CheckpointName = Literal["last", "best"]
CHECKPOINT_NAMES: tuple[CheckpointName, ...] = ("last", "best")
FeatureSplit = Literal["test", "train"]

_VAL_EPOCH = re.compile(r"^val_epoch_(\d{4,9})\.npz$")


def config(run_dir: Path) -> Path:
    return Path(run_dir) / CONFIG


def status(run_dir: Path) -> Path:
    return Path(run_dir) / STATUS


def meta(run_dir: Path) -> Path:
    return Path(run_dir) / META


def metrics(run_dir: Path) -> Path:
    return Path(run_dir) / METRICS


def test_summary(run_dir: Path) -> Path:
    return Path(run_dir) / TEST_SUMMARY


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINTS


def checkpoint(run_dir: Path, name: CheckpointName) -> Path:
    """checkpoints/last.pt or checkpoints/best.pt; any other name is refused (it would be a path from outside)."""
    if name not in CHECKPOINT_NAMES:
        raise ValueError(f"checkpoint must be one of {', '.join(CHECKPOINT_NAMES)}, got {name!r}.")
    return checkpoints_dir(run_dir) / f"{name}.pt"


def predictions_dir(run_dir: Path) -> Path:
    return Path(run_dir) / PREDICTIONS


def val_labels(run_dir: Path) -> Path:
    return predictions_dir(run_dir) / "val_labels.npz"


def val_epoch(run_dir: Path, epoch: int) -> Path:
    return predictions_dir(run_dir) / f"val_epoch_{epoch:04d}.npz"


def val_epoch_files(run_dir: Path) -> dict[int, Path]:
    """The saved validation predictions by epoch; stray files (val_epoch_copy.npz) are not epochs."""
    found = {}
    for path in predictions_dir(run_dir).glob("val_epoch_*.npz"):
        match = _VAL_EPOCH.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def test_predictions(run_dir: Path) -> Path:
    return predictions_dir(run_dir) / "test.npz"


def features(run_dir: Path, split: FeatureSplit) -> Path:
    if split not in ("test", "train"):
        raise ValueError(f"features are saved for the test and train splits, not {split!r}.")
    return predictions_dir(run_dir) / f"features_{split}.npz"


def feature_map(run_dir: Path) -> Path:
    return predictions_dir(run_dir) / "map_test.npz"


def kfold_job(run_dir: Path) -> Path:
    return predictions_dir(run_dir) / "kfold.json"


def out_of_fold(run_dir: Path) -> Path:
    return predictions_dir(run_dir) / "oof_train.npz"


# The files a live view watches: a change in any of them is a change worth redrawing for.
WATCHED = (STATUS, METRICS, TEST_SUMMARY)
