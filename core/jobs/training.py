"""The device queue: training runs, one at a time per device, the rest wait their turn.

Each device has a queue and, while it has work, one worker thread that trains the queue's runs in order
with `core.training.engine.train`. The thread never touches Streamlit: everything a run produces reaches
the pages through its run folder. A run of several processes (all GPUs of the machine) waits in the queue
of its first GPU and is trained by a torchrun subprocess (core/jobs/torchrun.py).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from core.jobs import torchrun
from core.rundir import catalog, lifecycle
from core.rundir.config import TrainConfig
from core.rundir.state import RunState
from core.training import distributed
from core.training.device import resolve_device
from core.training.engine import train
from core.training.models import check_model_name

log = logging.getLogger(__name__)


@dataclass
class TrainingJob:
    """One run in a device queue: what to train, where, and the flags the worker and the pages share."""
    run_id: str
    run_dir: Path
    config: TrainConfig
    resume: bool = False
    processes: int = 1  # more than 1: one torchrun subprocess trains the run with this many ranks
    stop_requested: threading.Event = field(default_factory=threading.Event)  # checked by train() every step
    ended: threading.Event = field(default_factory=threading.Event)  # set once it trained or left the queue

    @property
    def key(self) -> str:
        return self.run_id

    def stop(self) -> None:
        self.stop_requested.set()

    def is_alive(self) -> bool:
        return not self.ended.is_set()


class TrainingQueue:
    """Every device's queue of training runs, and the worker thread that trains them."""

    def __init__(self, runs_dir: Path):
        self.runs_dir = runs_dir
        # One lock for every check-then-act (state, queue place, enqueue), so two sessions pressing Resume
        # at once get one job and one refusal. Re-entrant: the public calls nest (delete -> stop).
        self._lock = threading.RLock()
        self._queues: dict[str, deque[TrainingJob]] = {}  # device key -> waiting jobs
        self._running: dict[str, TrainingJob] = {}  # device key -> the job training there
        self._workers: dict[str, threading.Thread] = {}

    # --- asking for work ---
    def submit(self, cfg: TrainConfig, name: str | None = None, processes: int = 1) -> str:
        """Queue a new run; it starts as soon as its device is free. Returns the run id.

        A model no architecture is registered under, a device this machine does not have, or `processes` it cannot run (more than its GPUs, a batch
        that does not split), is refused (ValueError) before any run folder is made.
        """
        check_model_name(cfg.model)
        problem = distributed.team_refusal(resolve_device(cfg.device), cfg.batch_size, processes)
        if problem:
            raise ValueError(problem)
        run_dir = lifecycle.create_run(self.runs_dir, cfg.to_dict(), name=name, state=RunState.QUEUED)
        self._enqueue(TrainingJob(run_dir.name, run_dir, cfg, processes=processes))
        return run_dir.name

    def resume(self, run_id: str) -> None:
        """Queue a stopped, failed or interrupted run to continue from its last checkpoint."""
        self._requeue(run_id, lifecycle.resume_refusal, resume=True)

    def restart(self, run_id: str) -> None:
        """Queue a run that ended before its first checkpoint to train again from the start, same settings."""
        self._requeue(run_id, lifecycle.restart_refusal, resume=False)

    def _requeue(self, run_id: str, refusal_of: Callable[[catalog.RunSummary], str | None], *,
                 resume: bool) -> None:
        run_dir = catalog.run_path(self.runs_dir, run_id)
        with self._lock:
            if self.position(run_id) is not None:
                raise catalog.RunError(f"Run {run_id} is already training or waiting in this dashboard.")
            summary = catalog.summarize_run(run_dir)
            refusal = refusal_of(summary)
            if refusal:
                raise catalog.RunError(refusal)
            cfg = TrainConfig.from_dict(summary.config)
            if not resume:
                lifecycle.reset_for_restart(run_dir)
            lifecycle.update_status(run_dir, state=RunState.QUEUED, error=None, pid=os.getpid(),
                                  host=socket.gethostname())
            processes = _processes_again(summary, cfg)
            self._enqueue(TrainingJob(run_id, run_dir, cfg, resume=resume, processes=processes))

    def stop(self, run_id: str) -> None:
        """Stop a running job (it saves a resumable checkpoint) or take a waiting one out of the queue."""
        with self._lock:
            for job in self._running.values():
                if job.run_id == run_id:
                    job.stop()
                    return
            for queue in self._queues.values():
                for job in list(queue):
                    if job.run_id == run_id:
                        queue.remove(job)
                        self._dequeued(job)
                        return
        raise catalog.RunError(f"Run {run_id} is not training in this dashboard (it may be a command-line run: "
                               "stop that one where it was started).")

    def delete(self, run_id: str) -> None:
        """Delete a run; a waiting one leaves the queue first. A training run is refused (stop it first)."""
        with self._lock:
            if (self.position(run_id) or 0) > 0:
                self.stop(run_id)  # a fresh queued run is deleted by this; a queued resume goes back to stopped
            if catalog.run_exists(self.runs_dir, run_id):  # a link too: deleting it removes the link only
                lifecycle.delete_run(self.runs_dir, run_id)

    # --- looking ---
    def position(self, run_id: str) -> int | None:
        """0 while training, 1.. for the place in its device's queue, None when not a job here."""
        with self._lock:
            if any(job.run_id == run_id for job in self._running.values()):
                return 0
            for queue in self._queues.values():
                for place, job in enumerate(queue, start=1):
                    if job.run_id == run_id:
                        return place
        return None

    def active_ids(self) -> list[str]:
        """Run ids training now, then those waiting, in queue order."""
        with self._lock:
            waiting = [job.run_id for queue in self._queues.values() for job in queue]
            return [job.run_id for job in self._running.values()] + waiting

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every job has finished (tests, shutdown); True when idle."""
        for worker in list(self._workers.values()):
            worker.join(timeout)
        return not self.active_ids()

    # --- the worker threads ---
    def _enqueue(self, job: TrainingJob) -> None:
        key = device_key(job.config.device)
        with self._lock:
            self._queues.setdefault(key, deque()).append(job)
            worker = self._workers.get(key)
            if worker is None or not worker.is_alive():
                worker = threading.Thread(target=self._work, args=(key,), name=f"train-{key}", daemon=True)
                self._workers[key] = worker
                worker.start()

    def _work(self, key: str) -> None:
        while True:
            with self._lock:
                queue = self._queues.get(key)
                if not queue:
                    self._workers.pop(key, None)
                    return
                job = queue.popleft()
                self._running[key] = job
            try:
                self._train(job)
            except Exception:  # train() reports its own failures; this guards the worker itself
                log.exception("job %s crashed", job.run_id)
            finally:
                with self._lock:
                    self._running.pop(key, None)
                job.ended.set()

    def _train(self, job: TrainingJob) -> None:
        if job.processes > 1:
            torchrun.train_in_torchrun(job.run_id, job.run_dir, job.processes, self.runs_dir, job.stop_requested)
        else:
            train(job.config, job.run_dir, stop=job.stop_requested, resume=job.resume)

    def _dequeued(self, job: TrainingJob) -> None:
        if job.resume:  # it keeps its checkpoints and goes back to being a stopped run
            lifecycle.update_status(job.run_dir, state=RunState.STOPPED)
        else:  # it never started: nothing in it but its settings
            lifecycle.delete_run(self.runs_dir, job.run_id)
        job.ended.set()


def _processes_again(summary: catalog.RunSummary, cfg: TrainConfig) -> int:
    """A run trained by several processes continues with as many when this machine can run them, else with one."""
    processes = summary.status.get("processes") or 1
    try:
        refusal = distributed.team_refusal(resolve_device(cfg.device), cfg.batch_size, processes)
    except ValueError:  # its device is not here: the job fails with that sentence when it runs
        return 1
    return 1 if refusal else processes


def device_key(name: str) -> str:
    """The queue a device name belongs to: "cuda" and "cuda:0" are one device, so one queue."""
    try:
        return str(resolve_device(name))
    except ValueError:  # an unavailable device: the job fails with that sentence when it runs
        return name
