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
      predictions/val_first_look.npz     the same halfway through epoch 1, where that half took a while
      predictions/test.npz               final test evaluation: label, pred, probs, loss, index
      predictions/features_{test,train}.npz  penultimate-layer features (the feature map's input)
      predictions/map_test.npz           the test features laid out in 2-D
      predictions/kfold.json             the runs of a K-fold job started from this run
      predictions/oof_train.npz          their combined out-of-fold probabilities

Everything else reads and writes these paths through the functions below, so a new file gets its name
here once (and in NAMES, which tests/core/rundir/test_layout.py looks for everywhere else) and the README's
run-folder table has one source to be checked against.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

# Directly in the run folder
CONFIG = "config.json"
STATUS = "status.json"
META = "meta.json"
METRICS = "metrics.jsonl"
TEST_SUMMARY = "test_summary.json"
CHECKPOINTS = "checkpoints"
PREDICTIONS = "predictions"

# In checkpoints/
CheckpointName = Literal["last", "best"]
CHECKPOINT_NAMES: tuple[CheckpointName, ...] = ("last", "best")
CHECKPOINT_FILES: dict[CheckpointName, str] = {name: f"{name}.pt" for name in CHECKPOINT_NAMES}

# In predictions/
FeatureSplit = Literal["test", "train"]
FEATURE_SPLITS: tuple[FeatureSplit, ...] = ("test", "train")
VAL_LABELS = "val_labels.npz"
VAL_EPOCH_PREFIX = "val_epoch_"  # then the epoch in at least 4 digits, then ".npz"
VAL_FIRST_LOOK = "val_first_look.npz"
TEST_PREDICTIONS = "test.npz"
FEATURE_FILES: dict[FeatureSplit, str] = {split: f"features_{split}.npz" for split in FEATURE_SPLITS}
FEATURE_MAP = "map_test.npz"
KFOLD_JOB = "kfold.json"
OUT_OF_FOLD = "oof_train.npz"

_VAL_EPOCH = re.compile(rf"^{VAL_EPOCH_PREFIX}(\d{{4,9}})\.npz$")

# Every name above, once: no two files of a run may share one (tests/core/rundir/test_layout.py checks both).
NAMES: tuple[str, ...] = (CONFIG, STATUS, META, METRICS, TEST_SUMMARY, CHECKPOINTS, PREDICTIONS,
                          *CHECKPOINT_FILES.values(), VAL_LABELS, VAL_FIRST_LOOK, TEST_PREDICTIONS,
                          *FEATURE_FILES.values(), FEATURE_MAP, KFOLD_JOB, OUT_OF_FOLD)


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
    return checkpoints_dir(run_dir) / CHECKPOINT_FILES[name]


def predictions_dir(run_dir: Path) -> Path:
    return Path(run_dir) / PREDICTIONS


def val_labels(run_dir: Path) -> Path:
    return predictions_dir(run_dir) / VAL_LABELS


def val_epoch(run_dir: Path, epoch: int) -> Path:
    return predictions_dir(run_dir) / f"{VAL_EPOCH_PREFIX}{epoch:04d}.npz"


def val_first_look(run_dir: Path) -> Path:
    return predictions_dir(run_dir) / VAL_FIRST_LOOK


def val_epoch_files(run_dir: Path) -> dict[int, Path]:
    """The saved validation predictions by epoch; stray files (val_epoch_copy.npz) are not epochs, and
    only the name val_epoch writes counts (val_epoch_00007.npz is not epoch 7's file)."""
    found = {}
    for path in predictions_dir(run_dir).glob(f"{VAL_EPOCH_PREFIX}*.npz"):
        match = _VAL_EPOCH.match(path.name)
        if match and path.name == val_epoch(run_dir, int(match[1])).name:
            found[int(match[1])] = path
    return dict(sorted(found.items()))


def test_predictions(run_dir: Path) -> Path:
    return predictions_dir(run_dir) / TEST_PREDICTIONS


def features(run_dir: Path, split: FeatureSplit) -> Path:
    if split not in FEATURE_SPLITS:
        raise ValueError(f"features are saved for the test and train splits, not {split!r}.")
    return predictions_dir(run_dir) / FEATURE_FILES[split]


def feature_map(run_dir: Path) -> Path:
    return predictions_dir(run_dir) / FEATURE_MAP


def kfold_job(run_dir: Path) -> Path:
    return predictions_dir(run_dir) / KFOLD_JOB


def out_of_fold(run_dir: Path) -> Path:
    return predictions_dir(run_dir) / OUT_OF_FOLD


def in_predictions(name: str) -> str:
    """How a sentence names a file of predictions/ ("predictions/test.npz"), the way a person finds it."""
    return f"{PREDICTIONS}/{name}"


# The files a live view watches: a change in any of them is a change worth redrawing for.
WATCHED = (STATUS, METRICS, TEST_SUMMARY)
