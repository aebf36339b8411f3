"""Background jobs: training, one at a time per device, the rest wait in a queue; and feature maps.

The dashboard keeps one `JobManager` for the whole server (`st.cache_resource`), so every browser tab
sees the same jobs. Worker threads call `core.training.engine.train` and nothing else: they never touch
Streamlit, and everything they produce reaches the pages through the run folders on disk. A job of
several processes (all GPUs of the machine) is the one exception: its worker starts
`torchrun ... -m core.train --queued RUN_ID` and waits for it, and Stop sends it Ctrl-C (SIGINT),
which torchrun forwards to every rank. It waits in the queue of its first GPU.

A feature-map job (`compute_map`) gives a finished run made before the map existed its map
(core.training.feature_map.compute_run_features) in a thread of its own; its progress is kept here, in memory,
for the Map page to show (`map_job`), as it writes nothing to the run until its files are complete.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from core.training import distributed

from core.rundir import catalog
from core.rundir.config import TrainConfig
from core.training.device import resolve_device
from core.training import feature_map
from core.training.engine import train
from core.sweep import load_sweep

log = logging.getLogger(__name__)
POLL_S = 0.2  # how often the worker of a torchrun job looks for a stop request


@dataclass
class Job:
    run_id: str
    run_dir: Path
    config: TrainConfig
    resume: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    processes: int = 1  # more than 1: one torchrun subprocess trains the run with this many ranks


@dataclass
class MapJob:
    """A feature-map computation for one run: where it is, and how it ended."""
    run_id: str
    stop: threading.Event = field(default_factory=threading.Event)
    fraction: float = 0.0  # 0..1
    message: str = "Waiting to start"
    state: str = "running"  # running, done, stopped or failed
    error: str | None = None


class JobManager:
    def __init__(self, runs_dir: str | Path):
        self.runs_dir = Path(runs_dir)
        # One lock for every check-then-act (state, queue place, enqueue), so two sessions pressing Resume
        # at once get one job and one refusal. Re-entrant: the public calls nest (delete -> stop).
        self._lock = threading.RLock()
        self._queues: dict[str, deque[Job]] = {}  # device key -> waiting jobs
        self._running: dict[str, Job] = {}  # device key -> the job training there
        self._workers: dict[str, threading.Thread] = {}
        self._maps: dict[str, MapJob] = {}  # run id -> its latest feature-map job
        self._sweep_workers: dict[str, list[subprocess.Popen]] = {}  # sweep id -> worker processes started here

    # --- asking for work ---
    def submit(self, cfg: TrainConfig, name: str | None = None, processes: int = 1) -> str:
        """Queue a new run; it starts as soon as its device is free. Returns the run id.

        A device this machine does not have, or `processes` it cannot run (more than its GPUs, a batch
        that does not split), is refused (ValueError) before any run folder is made.
        """
        problem = distributed.team_refusal(resolve_device(cfg.device), cfg.batch_size, processes)
        if problem:
            raise ValueError(problem)
        run_dir = catalog.create_run(self.runs_dir, cfg.to_dict(), name=name, state="queued")
        self._enqueue(Job(run_dir.name, run_dir, cfg, processes=processes))
        return run_dir.name

    def resume(self, run_id: str) -> None:
        """Queue a stopped, failed or interrupted run to continue from its last checkpoint."""
        self._requeue(run_id, catalog.resume_refusal, resume=True)

    def restart(self, run_id: str) -> None:
        """Queue a run that ended before its first checkpoint to train again from the start, same settings."""
        self._requeue(run_id, catalog.restart_refusal, resume=False)

    def _requeue(self, run_id: str, refusal_of, *, resume: bool) -> None:
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
                catalog.reset_for_restart(run_dir)
            catalog.update_status(run_dir, state="queued", error=None, pid=os.getpid(), host=socket.gethostname())
            self._enqueue(Job(run_id, run_dir, cfg, resume=resume, processes=_processes_again(summary, cfg)))

    def stop(self, run_id: str) -> None:
        """Stop a running job (it saves a resumable checkpoint) or take a waiting one out of the queue."""
        with self._lock:
            for device, job in self._running.items():
                if job.run_id == run_id:
                    job.stop.set()
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
                catalog.delete_run(self.runs_dir, run_id)

    def compute_map(self, run_id: str) -> MapJob:
        """Start computing a finished run's feature map in the background; RunError says why not."""
        run_dir = catalog.run_path(self.runs_dir, run_id)
        with self._lock:
            if self.position(run_id) is not None:
                raise catalog.RunError(f"Run {run_id} is still training here: its map is made when it finishes.")
            current = self._maps.get(run_id)
            if current is not None and current.state == "running":
                raise catalog.RunError(f"The map of run {run_id} is already being computed.")
            job = self._maps[run_id] = MapJob(run_id)
        threading.Thread(target=self._map_work, args=(job, run_dir), name=f"map-{run_id}", daemon=True).start()
        return job

    def map_job(self, run_id: str) -> MapJob | None:
        """The run's latest feature-map job in this dashboard (running or ended), or None."""
        with self._lock:
            return self._maps.get(run_id)

    def _map_work(self, job: MapJob, run_dir: Path) -> None:
        def progress(fraction: float, message: str) -> None:
            job.fraction, job.message = fraction, message

        try:
            feature_map.compute_run_features(run_dir, resolve_device("auto"), progress, job.stop)
            job.state = "done"
        except feature_map.FeaturesStopped:
            job.state = "stopped"
        except (catalog.RunError, ValueError, OSError) as exc:  # a sentence for the user: missing data, full disk
            job.state, job.error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 (the thread must end with a state the page can show)
            log.exception("feature map of %s crashed", job.run_id)
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"

    # --- sweep workers: processes of their own, so a sweep outlives a page and a crash takes one worker ---
    def start_sweep_workers(self, sweep_id: str, devices: list[str]) -> int:
        """Start one `python -m core.sweep work` process per device; their logs go to the sweep's workers/.

        Devices this machine lacks are refused (ValueError) before any worker starts. Returns how many
        workers of this sweep now run from this dashboard."""
        sweep = load_sweep(self.runs_dir, sweep_id)
        for device in devices:
            resolve_device(device)
        logs = sweep.path / "workers"
        logs.mkdir(exist_ok=True)
        sweep.clear_stop()
        with self._lock:
            for device in devices:
                log_file = logs / f"{socket.gethostname()}-{device.replace(':', '')}-{time.strftime('%Y%m%d-%H%M%S')}.log"
                with open(log_file, "ab") as out:  # the child keeps its own handle
                    worker = subprocess.Popen(
                        [sys.executable, "-m", "core.sweep", "work", "--sweep", sweep_id, "--device", device,
                         "--runs-dir", str(self.runs_dir)], stdout=out, stderr=subprocess.STDOUT)
                self._sweep_workers.setdefault(sweep_id, []).append(worker)
        return self.sweep_workers(sweep_id)

    def sweep_workers(self, sweep_id: str) -> int:
        """How many workers of the sweep started from this dashboard are still working."""
        with self._lock:
            alive = [w for w in self._sweep_workers.get(sweep_id, []) if w.poll() is None]
            self._sweep_workers[sweep_id] = alive
            return len(alive)

    def stop_sweep(self, sweep_id: str) -> None:
        """Ask every worker of the sweep, here or on other machines, to stop; their trials end "stopped"."""
        load_sweep(self.runs_dir, sweep_id).request_stop()

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

    # --- machinery ---
    def _enqueue(self, job: Job) -> None:
        key = _device_key(job.config.device)
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
                if job.processes > 1:
                    self._train_in_torchrun(job)
                else:
                    train(job.config, job.run_dir, stop=job.stop, resume=job.resume)
            except Exception:  # train() reports its own failures; this guards the worker itself
                log.exception("job %s crashed", job.run_id)
            finally:
                with self._lock:
                    self._running.pop(key, None)

    def _train_in_torchrun(self, job: Job) -> None:
        """torchrun trains the queued run; a stop request becomes its Ctrl-C. A team that ended before rank 0
        took the run over leaves it stopped (when asked to stop) or failed with torchrun's last line."""
        args = ["--queued", job.run_id, "--runs-dir", str(self.runs_dir.resolve()), "--quiet"]
        with tempfile.TemporaryFile("w+", encoding="utf-8") as errors:
            team = subprocess.Popen(distributed.torchrun_command(job.processes, args), cwd=distributed.REPO,
                                    stdout=subprocess.DEVNULL, stderr=errors, text=True)
            _wait_or_interrupt(team, job.stop)
            if catalog.summarize_run(job.run_dir).state == "queued":  # still the dashboard's: no rank got going
                errors.seek(0)
                last = ([line.strip() for line in errors.read().splitlines() if line.strip()] or ["no message"])[-1]
                error = None if job.stop.is_set() else (
                    f"torchrun ended (exit status {team.returncode}) before training: {last}")
                catalog.update_status(job.run_dir, state="stopped" if error is None else "failed", error=error,
                                   finished_at=time.time())

    def _dequeued(self, job: Job) -> None:
        if job.resume:  # it keeps its checkpoints and goes back to being a stopped run
            catalog.update_status(job.run_dir, state="stopped")
        else:  # it never started: nothing in it but its settings
            catalog.delete_run(self.runs_dir, job.run_id)


def _wait_or_interrupt(process: subprocess.Popen, stop: threading.Event) -> None:
    """Wait for `process` to end, sending it SIGINT (once) when `stop` is set."""
    interrupted = False
    while True:
        try:
            process.wait(timeout=POLL_S)
            return
        except subprocess.TimeoutExpired:
            if stop.is_set() and not interrupted:
                process.send_signal(signal.SIGINT)
                interrupted = True


def _processes_again(summary: catalog.RunSummary, cfg: TrainConfig) -> int:
    """A run trained by several processes continues with as many when this machine can run them, else with one."""
    processes = summary.status.get("processes") or 1
    try:
        refusal = distributed.team_refusal(resolve_device(cfg.device), cfg.batch_size, processes)
    except ValueError:  # its device is not here: the job fails with that sentence when it runs
        return 1
    return 1 if refusal else processes


def _device_key(name: str) -> str:
    try:
        return str(resolve_device(name))
    except ValueError:  # an unavailable device: the job fails with that sentence when it runs
        return name

