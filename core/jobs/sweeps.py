"""Sweep workers started from the dashboard: `python -m core.sweep work` processes, one per device.

Processes of their own, so a sweep outlives the page that started it and a crash takes one worker. They
train beside the device queue, not in it: a sweep is asked to stop through its folder (every worker, here
or on other machines, ends its trial "stopped"), and a single worker through Ctrl-C.
"""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from core.jobs.job import JobBook
from core.sweep import Sweep, load_sweep
from core.training.device import resolve_device


@dataclass
class SweepWorker:
    """One worker process of a sweep, started here."""
    sweep_id: str
    process: subprocess.Popen

    @property
    def key(self) -> str:
        return self.sweep_id

    def stop(self) -> None:
        """Ctrl-C: the worker ends its trial "stopped" (resumable) and exits; the sweep's other workers go on."""
        if self.is_alive():
            self.process.send_signal(signal.SIGINT)

    def is_alive(self) -> bool:
        return self.process.poll() is None


class SweepWorkers:
    """The sweep workers this dashboard started, by sweep."""

    def __init__(self, runs_dir: Path):
        self.runs_dir = runs_dir
        self._book: JobBook[SweepWorker] = JobBook()

    def start(self, sweep_id: str, devices: list[str]) -> int:
        """Start one worker per device; their logs go to the sweep's workers folder.

        Devices this machine lacks are refused (ValueError) before any worker starts. Returns how many
        workers of this sweep now run from this dashboard."""
        sweep = load_sweep(self.runs_dir, sweep_id)
        for device in devices:
            resolve_device(device)
        sweep.workers_dir.mkdir(exist_ok=True)
        sweep.clear_stop()
        for device in devices:
            self._book.add(SweepWorker(sweep_id, self._launch(sweep, device)))
        return self.count(sweep_id)

    def _launch(self, sweep: Sweep, device: str) -> subprocess.Popen:
        log_file = sweep.workers_dir / _log_name(device)
        with open(log_file, "ab") as out:  # the child keeps its own handle
            return subprocess.Popen(
                [sys.executable, "-m", "core.sweep", "work", "--sweep", sweep.sweep_id, "--device", device,
                 "--runs-dir", str(self.runs_dir)], stdout=out, stderr=subprocess.STDOUT)

    def count(self, sweep_id: str) -> int:
        """How many workers of the sweep started from this dashboard are still working."""
        return len(self._book.alive(sweep_id))

    def stop_sweep(self, sweep_id: str) -> None:
        """Ask every worker of the sweep, here or on other machines, to stop; their trials end "stopped"."""
        load_sweep(self.runs_dir, sweep_id).request_stop()


def _log_name(device: str) -> str:
    """host-device-time.log: one log per worker, telling apart the machines that share the sweep."""
    return f"{socket.gethostname()}-{device.replace(':', '')}-{time.strftime('%Y%m%d-%H%M%S')}.log"
