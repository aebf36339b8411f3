"""Out-of-fold training predictions: K quick runs, each holding out one fold of the parent run's training set.

The parent run's own predictions on its training pictures are in-sample (it learned them), so confident
learning cannot judge their labels. `plan_folds` turns the parent's settings into K configs that differ
only in `fold` (TrainConfig.folds/fold make the held-out fold the validation split); core.jobs queues them
as runs and notes them in the parent's K-fold record (`save_job`, layout.kfold_job). Once every fold run
has finished, `combine_folds` puts each run's validation probabilities after its last epoch together into
the parent's out-of-fold file (layout.out_of_fold: labels, probs, index), one row per training picture.
This module plans, records and combines; it never trains.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from core.rundir import catalog, layout, records
from core.rundir.config import MAX_FOLDS, TrainConfig
from core.rundir.predictions import Predictions, load_labelled_probs, load_predictions, save_npz, val_epochs
from core.rundir.records import PredictionsError
from core.rundir.state import LIVE_STATES, RunState

DEFAULT_FOLDS = 5


class FoldJobState(StrEnum):
    """How a K-fold job stands as a whole (a job of several runs, not a RunState of one)."""
    COMPLETED = "completed"  # every fold run finished: their answers can be combined
    RUNNING = "running"  # some fold run trains or waits
    ENDED = "ended"  # none is going, and not all finished (stopped, failed or deleted)


def plan_folds(parent: TrainConfig, folds: int = DEFAULT_FOLDS) -> list[TrainConfig]:
    """K configs: the parent's settings, each holding out fold k of its training set (same split seed)."""
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= MAX_FOLDS:
        raise ValueError(f"The number of folds must be a whole number from 2 to {MAX_FOLDS}, got {folds!r}.")
    # Early stopping would watch the held-out fold: every fold would stop at a different point, so it is off.
    return [parent.replace(folds=folds, fold=k, early_stopping=0) for k in range(folds)]


def seconds_per_epoch(summary: catalog.RunSummary) -> float | None:
    """The parent's own training time per epoch, or None when it has not finished an epoch or kept no time."""
    if not summary.duration_s or summary.epoch < 1:
        return None
    return summary.duration_s / summary.epoch


def estimate_seconds(summary: catalog.RunSummary, folds: int) -> float | None:
    """Expected time of the K fold runs one after the other, from the parent's seconds per epoch.

    A fold run trains on (K-1)/K of the training set instead of the parent's (1 - val_fraction), so an
    epoch costs that share of the parent's.
    """
    per_epoch = seconds_per_epoch(summary)
    epochs = summary.config.get("epochs")
    if per_epoch is None or not isinstance(epochs, int):
        return None
    parent_share = 1 - float(summary.config.get("val_fraction") or 0.0)
    return folds * epochs * per_epoch * ((folds - 1) / folds) / max(parent_share, 0.5)


@dataclass(frozen=True)
class FoldJob:
    """A K-fold job of one parent run: its fold runs, in fold order."""
    folds: int
    run_ids: list[str]


def save_job(run_dir: Path, job: FoldJob) -> None:
    layout.predictions_dir(run_dir).mkdir(exist_ok=True)
    records.write_json(layout.kfold_job(run_dir), {"folds": job.folds, "runs": job.run_ids})


def read_job(run_dir: Path) -> FoldJob | None:
    """The parent's K-fold job, or None when none was started (or its file is not one)."""
    data = records.read_json(layout.kfold_job(run_dir)) or {}
    folds, ids = data.get("folds"), data.get("runs")
    if not isinstance(folds, int) or not isinstance(ids, list) or len(ids) != folds or \
            not all(isinstance(i, str) for i in ids):
        return None
    return FoldJob(folds, ids)


def _last_val(run_dir: Path) -> Predictions:
    """A fold run's validation (= held-out fold) predictions after its last saved epoch."""
    epochs = val_epochs(run_dir)
    preds = load_predictions(run_dir, "val", epochs[-1]) if epochs else None
    if preds is None:
        raise PredictionsError(f"Fold run {run_dir.name} saved no predictions on its held-out fold.")
    return preds


def combine_folds(parent_dir: Path, fold_dirs: list[Path]) -> Path:
    """Write the fold runs' held-out predictions into the parent's out-of-fold file; returns its path.

    Together the folds must hold out every training picture (0 to N-1) exactly once, else PredictionsError.
    """
    parts = [_last_val(fold_dir) for fold_dir in fold_dirs]
    n_train = sum(len(p.index) for p in parts)
    if not parts or len({p.probs.shape[1] for p in parts}) != 1:
        raise PredictionsError("The fold runs do not fit together (none finished, or their classes differ).")
    index = np.concatenate([p.index for p in parts])
    if not np.array_equal(np.sort(index), np.arange(n_train)):
        raise PredictionsError(f"The fold runs do not hold out each of the {n_train:,} training pictures exactly "
                               "once (were they trained with different folds or split seeds?), so they cannot be "
                               "combined.")
    order = np.argsort(index)
    probs = np.concatenate([p.probs for p in parts])[order]  # (N, C), row k = training picture k
    labels = np.concatenate([p.labels for p in parts])[order]
    path = layout.out_of_fold(parent_dir)
    save_npz(path, labels=labels, probs=probs.astype(np.float16), index=np.arange(n_train))
    return path


def load_oof(run_dir: Path) -> Predictions | None:
    """The combined out-of-fold training predictions, or None when there are none; PredictionsError if damaged."""
    return load_labelled_probs(layout.out_of_fold(run_dir), "train")


def progress(job: FoldJob, runs_dir: Path) -> list[catalog.RunSummary | None]:
    """Each fold run's summary (None: deleted), in fold order."""
    out = []
    for run_id in job.run_ids:
        try:
            out.append(catalog.summarize_run(catalog.run_path(runs_dir, run_id)))
        except catalog.RunError:
            out.append(None)
    return out


def overall_progress(summaries: list[catalog.RunSummary | None]) -> float:
    """0 to 1 over the whole job: each fold counts equally; a missing or ended-early run counts as its progress."""
    if not summaries:
        return 0.0
    done = [1.0 if s is not None and s.state == RunState.COMPLETED else (s.progress if s is not None else 0.0)
            for s in summaries]
    return float(min(max(math.fsum(done) / len(done), 0.0), 1.0))


def job_state(summaries: list[catalog.RunSummary | None]) -> FoldJobState:
    """COMPLETED when every fold run finished, RUNNING while any trains or waits, else ENDED (None: deleted)."""
    if all(s is not None and s.state == RunState.COMPLETED for s in summaries):
        return FoldJobState.COMPLETED
    live = any(s is not None and s.state in LIVE_STATES for s in summaries)
    return FoldJobState.RUNNING if live else FoldJobState.ENDED
