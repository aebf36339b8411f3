"""One run's numbers: accuracy and where its time went, with the machine's contention alongside."""
from __future__ import annotations

import dataclasses
import os
import resource
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from core.rundir import catalog, records
from core.rundir.state import RunState


@dataclass
class Measurement:
    """One training run: its accuracy and where its time went."""
    seed: int
    test_acc: float | None = None
    train_s: float | None = None  # epochs + final test evaluation, from the run's records
    test_s: float | None = None
    images_per_s: float | None = None  # training images per second over all epochs
    wall_s: float | None = None  # the call (start_run / submit) to the completed run
    peak_mib: float | None = None
    load_avg: float | None = None  # 1-minute load average when the run started
    others_cpu: float | None = None  # cores other processes kept busy during the run (contention)
    polls: int = 0  # reads of the run folder during a watched run
    error: str | None = None


@dataclass
class RowResult:
    key: str
    title: str
    model: str
    how: str  # "engine", "tutorial", "command line", "dashboard (watched)"
    settings: dict[str, Any]
    target: str = ""
    load_s: float | None = None  # disk to memory: decode cache, or archive extraction
    warmup_s: float | None = None  # one untimed 1-epoch run first (CUDA/cuDNN/compile start-up)
    runs: list[Measurement] = field(default_factory=list)

    def values(self, name: str) -> list[float]:
        return [getattr(m, name) for m in self.runs if m.error is None and getattr(m, name) is not None]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for name in ("test_acc", "train_s", "images_per_s", "wall_s", "peak_mib"):
            out[f"{name}_mean"], out[f"{name}_std"] = mean_std(self.values(name))
        return out


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def peak_memory_mib(device: torch.device) -> float:
    """Peak allocated memory on CUDA since the last reset; on CPU the process's peak RSS so far."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this platform
        return None


def _cpu_counters() -> tuple[float, float, float] | None:
    """(CPU seconds all cores were busy since boot, CPU seconds of this process and its reaped children,
    monotonic now); None where /proc/stat does not exist (not Linux)."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal: busy is all but idle and iowait
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    own = sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))
    return busy, own, time.monotonic()


class Contention:
    """How many cores other processes kept busy over an interval: the honest caveat on a shared machine's
    timings (the load average cannot tell a run's own threads from other people's)."""

    def __init__(self) -> None:
        self.start = _cpu_counters()

    def others(self) -> float | None:
        end = _cpu_counters()
        if self.start is None or end is None or end[2] <= self.start[2]:
            return None
        busy, own, wall = (e - s for e, s in zip(end, self.start))
        return max(0.0, (busy - own) / wall)


def epoch_records(run_dir: Path) -> list[dict[str, Any]]:
    """The run's end-of-epoch records that carry their seconds, in order."""
    return [r for r in catalog.read_metrics(run_dir) if r["kind"] == "val" and "seconds" in r]


def measure_run_dir(run_dir: Path, m: Measurement) -> Measurement:
    """Fill accuracy and timings from the run's own records (val records carry per-epoch seconds), each file
    read through its checked reader, so a damaged one is an error of this measurement, not an exception."""
    summary = catalog.summarize_run(run_dir)
    if summary.state != RunState.COMPLETED:
        m.error = summary.error or f"the run ended '{summary.state}'"
        return m
    epochs = epoch_records(run_dir)
    test = records.read_test_summary(run_dir) or {}
    epoch_s = sum(r["seconds"] for r in epochs)
    images = sum(r["images_per_s"] * r["seconds"] for r in epochs if r.get("images_per_s"))
    m.test_acc, m.test_s = test.get("accuracy"), test.get("seconds") or 0.0
    m.train_s = epoch_s + m.test_s
    m.images_per_s = images / epoch_s if epoch_s > 0 else None
    return m
