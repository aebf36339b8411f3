"""K-fold runs: the fold runs that core.analysis.kfold plans, queued and stopped on the device queue.

Analysis plans the folds, keeps the parent's record of them and combines their answers; starting and
stopping training is the conductor's, so it lives here.
"""
from __future__ import annotations

from core.analysis import kfold
from core.jobs.training import TrainingQueue
from core.rundir import catalog
from core.rundir.config import TrainConfig


def start_kfold(queue: TrainingQueue, parent: catalog.RunSummary, folds: int = kfold.DEFAULT_FOLDS) -> kfold.FoldJob:
    """Queue the K fold runs of `parent`, one after the other, and note them in the parent's K-fold record."""
    configs = kfold.plan_folds(TrainConfig.from_dict(parent.config), folds)
    ids = [queue.submit(cfg, name=f"{parent.name} fold {k + 1} of {folds}") for k, cfg in enumerate(configs)]
    job = kfold.FoldJob(folds, ids)
    kfold.save_job(parent.path, job)
    return job


def stop_kfold(queue: TrainingQueue, job: kfold.FoldJob) -> None:
    """Stop the fold run training now and take the waiting ones out of the queue."""
    for run_id in job.run_ids:
        if queue.position(run_id) is not None:
            try:
                queue.stop(run_id)
            except catalog.RunError:  # it finished between the look and the stop
                pass
