"""JobManager: the one front desk the pages talk to, handing each request to the job that does it.

The dashboard keeps one JobManager for the whole server (`st.cache_resource`), so every browser tab sees
the same jobs. Behind it: the device queue of training runs (`training`), which the K-fold runs join
too; beside it, the map jobs (`maps`) and the sweep worker processes (`sweeps`). Each is a `Job`
(core/jobs/job.py): it can be asked whether it is alive and told to stop.
"""
from __future__ import annotations

from pathlib import Path

from core.analysis.kfold import DEFAULT_FOLDS, FoldJob
from core.jobs import kfold_runs
from core.jobs.maps import MapJob, MapJobs
from core.jobs.sweeps import SweepWorkers
from core.jobs.training import TrainingQueue
from core.rundir import catalog
from core.rundir.config import TrainConfig


class JobManager:
    def __init__(self, runs_dir: str | Path):
        self.runs_dir = Path(runs_dir)
        self.training = TrainingQueue(self.runs_dir)
        self.maps = MapJobs(self.runs_dir)
        self.sweeps = SweepWorkers(self.runs_dir)

    # --- training runs: one at a time per device ---
    def submit(self, cfg: TrainConfig, name: str | None = None, processes: int = 1) -> str:
        """Queue a new run (ValueError before any folder is made when this machine cannot run it)."""
        return self.training.submit(cfg, name, processes)

    def resume(self, run_id: str) -> None:
        """Queue a stopped, failed or interrupted run to continue from its last checkpoint."""
        self.training.resume(run_id)

    def restart(self, run_id: str) -> None:
        """Queue a run that ended before its first checkpoint to train again from the start."""
        self.training.restart(run_id)

    def stop(self, run_id: str) -> None:
        """Stop a training run (it saves a resumable checkpoint) or take a waiting one out of the queue."""
        self.training.stop(run_id)

    def delete(self, run_id: str) -> None:
        """Delete a run; a waiting one leaves the queue first. A training run is refused (stop it first)."""
        self.training.delete(run_id)

    def position(self, run_id: str) -> int | None:
        """0 while training, 1.. for the place in its device's queue, None when not a job here."""
        return self.training.position(run_id)

    def active_ids(self) -> list[str]:
        """Run ids training now, then those waiting, in queue order."""
        return self.training.active_ids()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every training run has finished (tests, shutdown); True when idle."""
        return self.training.wait(timeout)

    # --- K-fold runs: planned by core.analysis.kfold, trained in the device queue ---
    def start_kfold(self, parent: catalog.RunSummary, folds: int = DEFAULT_FOLDS) -> FoldJob:
        """Queue the K fold runs of `parent` and note them in its K-fold record."""
        return kfold_runs.start_kfold(self.training, parent, folds)

    def stop_kfold(self, job: FoldJob) -> None:
        """Stop the fold run training now and take the waiting ones out of the queue."""
        kfold_runs.stop_kfold(self.training, job)

    # --- feature maps of runs made before the map existed ---
    def compute_map(self, run_id: str) -> MapJob:
        """Start computing a finished run's feature map in the background; RunError says why not."""
        if self.position(run_id) is not None:
            raise catalog.RunError(f"Run {run_id} is still training here: its map is made when it finishes.")
        return self.maps.start(run_id)

    def map_job(self, run_id: str) -> MapJob | None:
        """The run's latest feature-map job in this dashboard (running or ended), or None."""
        return self.maps.latest(run_id)

    # --- sweep workers: processes of their own ---
    def start_sweep_workers(self, sweep_id: str, devices: list[str]) -> int:
        """Start one worker process per device (ValueError for a device this machine lacks, before any
        starts); returns how many workers of this sweep now run from this dashboard."""
        return self.sweeps.start(sweep_id, devices)

    def sweep_workers(self, sweep_id: str) -> int:
        """How many workers of the sweep started from this dashboard are still working."""
        return self.sweeps.count(sweep_id)

    def stop_sweep(self, sweep_id: str) -> None:
        """Ask every worker of the sweep, here or on other machines, to stop; their trials end "stopped"."""
        self.sweeps.stop_sweep(sweep_id)
