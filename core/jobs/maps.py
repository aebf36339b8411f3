"""Map jobs: a finished run made before the feature map existed gets its map, in a thread of its own.

The map is written only once all of its files are complete, so the job's progress lives here, in memory,
for the Map page to show; the run folder has nothing to say until the job is done.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from core.jobs.job import JobBook
from core.rundir import catalog
from core.training import feature_map  # the feature-map writer: used by `_write_map` alone
from core.training.device import resolve_device

log = logging.getLogger(__name__)


class MapState(StrEnum):
    """How a map job stands; a string enum, so the pages may compare with the plain words."""
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"  # asked to stop: nothing of it was kept
    FAILED = "failed"  # `error` says why


class MapStopped(Exception):
    """The map job was asked to stop before its files were complete."""


@dataclass
class MapJob:
    """A feature-map computation for one run: how far it is, and how it ended."""
    run_id: str
    fraction: float = 0.0  # 0..1
    message: str = "Waiting to start"
    state: MapState = MapState.RUNNING
    error: str | None = None
    stop_requested: threading.Event = field(default_factory=threading.Event)

    @property
    def key(self) -> str:
        return self.run_id

    def stop(self) -> None:
        self.stop_requested.set()

    def is_alive(self) -> bool:
        return self.state == MapState.RUNNING

    def progress(self, fraction: float, message: str) -> None:
        self.fraction, self.message = fraction, message


class MapJobs:
    """The map jobs started here, the latest of each run kept after it ends so the page can say how."""

    def __init__(self, runs_dir: Path):
        self.runs_dir = runs_dir
        self._book: JobBook[MapJob] = JobBook()
        self._lock = threading.Lock()  # the check for a running job and the start of a new one are one step

    def start(self, run_id: str) -> MapJob:
        """Start computing the run's map in the background; RunError when one is already being computed."""
        run_dir = catalog.run_path(self.runs_dir, run_id)
        with self._lock:
            if self._book.alive(run_id):
                raise catalog.RunError(f"The map of run {run_id} is already being computed.")
            job = self._book.add(MapJob(run_id))
        threading.Thread(target=_run, args=(job, run_dir), name=f"map-{run_id}", daemon=True).start()
        return job

    def latest(self, run_id: str) -> MapJob | None:
        """The run's latest map job in this dashboard (running or ended), or None."""
        return self._book.latest(run_id)


def _run(job: MapJob, run_dir: Path) -> None:
    """The thread's body: it always ends with a state the page can show."""
    try:
        _write_map(run_dir, job.progress, job.stop_requested)
        job.state = MapState.DONE
    except MapStopped:
        job.state = MapState.STOPPED
    except (catalog.RunError, ValueError, OSError) as exc:  # a sentence for the user: missing data, full disk
        job.state, job.error = MapState.FAILED, str(exc)
    except Exception as exc:  # noqa: BLE001 (the thread must end with a state the page can show)
        log.exception("feature map of %s crashed", job.run_id)
        job.state, job.error = MapState.FAILED, f"{type(exc).__name__}: {exc}"


def _write_map(run_dir: Path, progress: Callable[[float, str], None], stop: threading.Event) -> None:
    """The one call into the feature-map writer; MapStopped when `stop` ended it early."""
    try:
        feature_map.compute_run_features(run_dir, resolve_device("auto"), progress, stop)
    except feature_map.FeaturesStopped:
        raise MapStopped from None
