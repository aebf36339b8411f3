"""What a training run tells the world while it trains: status.json (state, progress, ETA, heartbeat) and,
on ranks that do not write, nothing.

The engine (core.training.engine) owns when to report; this module owns how often status.json is
rewritten and what a rank other than the writer does instead (under torchrun only rank 0 writes).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

from core.rundir import files, lifecycle

log = logging.getLogger(__name__)


class StatusReporter:
    """Writes progress, ETA and the heartbeat to status.json at most once an `interval_s` (no device sync)."""

    def __init__(self, run_dir: Path, on_status: Callable[[dict[str, Any]], None] | None, interval_s: float):
        self.run_dir, self.on_status, self.interval_s = run_dir, on_status, interval_s
        self.total_steps, self.epochs, self.first_step = 1, 1, 0
        self.t0 = self.last = time.monotonic()

    def begin(self, step: int, total_steps: int, epochs: int) -> None:
        self.total_steps, self.epochs, self.first_step = max(total_steps, 1), epochs, step
        self.t0 = time.monotonic()
        self.update(step=step, total_steps=total_steps, epochs=epochs, progress=step / self.total_steps)

    def tick(self, step: int, epoch: int) -> None:
        now = time.monotonic()
        if now - self.last < self.interval_s:
            return
        done = step - self.first_step
        eta = (self.total_steps - step) * (now - self.t0) / done if done > 0 else None
        self.update(step=step, epoch=epoch, progress=step / self.total_steps, eta_seconds=eta)

    def update(self, **changes: Any) -> None:
        self.last = time.monotonic()
        status = lifecycle.update_status(self.run_dir, **changes)
        if self.on_status is not None:
            self.on_status(status)

    def report_failure(self, **changes: Any) -> None:
        """Mark the run failed. On a disk too full for even that small write, status.json is rewritten in place;
        if that fails too (a read-only folder), the run reads as interrupted."""
        try:
            self.update(**changes)
        except OSError as exc:
            if not files.is_disk_full(exc) or not self._failed_in_place(changes):
                log.warning("could not record the failure of %s: %s", self.run_dir.name, changes.get("error"))

    def _failed_in_place(self, changes: dict[str, Any]) -> bool:
        try:
            lifecycle.update_status_in_place(self.run_dir, **changes)
            return True
        except OSError:
            return False


class SilentReporter(StatusReporter):
    """A rank other than the writer: the status is rank 0's to write."""

    def update(self, **changes: Any) -> None:
        self.last = time.monotonic()


class NoMetrics:
    """A rank other than the writer: metrics.jsonl is rank 0's to write."""

    def write(self, records: list[dict[str, Any]]) -> None:
        pass

    def close(self) -> None:
        pass
