"""A queued run trained by several processes: one torchrun subprocess, stopped with Ctrl-C.

The device queue's worker starts `torchrun ... -m core.train --queued RUN_ID` and waits for it; a stop
request becomes SIGINT (as Ctrl-C), which torchrun forwards to every rank, and each saves its checkpoint.
"""
from __future__ import annotations

import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from core.rundir import catalog, lifecycle
from core.rundir.state import RunState
from core.training import distributed

POLL_S = 0.2  # how often the worker of a torchrun job looks for a stop request


def train_in_torchrun(run_id: str, run_dir: Path, processes: int, runs_dir: Path, stop: threading.Event) -> None:
    """torchrun trains the queued run; a stop request becomes its Ctrl-C. A team that ended before rank 0
    took the run over leaves it stopped (when asked to stop) or failed with torchrun's last line."""
    args = ["--queued", run_id, "--runs-dir", str(runs_dir.resolve()), "--quiet"]
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errors:
        team = subprocess.Popen(distributed.torchrun_command(processes, args), cwd=distributed.REPO,
                                stdout=subprocess.DEVNULL, stderr=errors, text=True)
        wait_or_interrupt(team, stop)
        if catalog.summarize_run(run_dir).state == RunState.QUEUED:  # still the dashboard's: no rank got going
            errors.seek(0)
            last = ([line.strip() for line in errors.read().splitlines() if line.strip()] or ["no message"])[-1]
            error = None if stop.is_set() else (
                f"torchrun ended (exit status {team.returncode}) before training: {last}")
            lifecycle.update_status(run_dir, state=RunState.STOPPED if error is None else RunState.FAILED,
                                  error=error, finished_at=time.time())


def wait_or_interrupt(process: subprocess.Popen, stop: threading.Event) -> None:
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
