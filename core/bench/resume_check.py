"""`python -m core.bench --check-resume`: a run stopped after its first epoch and resumed on the same device
must complete, and land near the same run trained without a break (same seed)."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch

from core.rundir.state import RunState
from core.training.device import describe_device
from core.training.engine import RunResult, resume_run, start_run
from core.training.recipes import preset_config

RECIPE = "quick-demo"
EPOCHS = 3


def _stop_after_first_epoch(stop: threading.Event):
    def on_status(status: dict[str, Any]) -> None:
        if (status.get("epoch") or 0) >= 1:  # the engine reports every epoch end; it stops at its next step
            stop.set()
    return on_status


def check_resume(data: str, device: torch.device, runs_dir: Path) -> tuple[bool, str]:
    """(passed, one line saying what happened): an uninterrupted run, then a stopped and resumed one."""
    cfg = preset_config(RECIPE, data=data, device=str(device), epochs=EPOCHS, warmup_epochs=1.0)
    whole = start_run(cfg, runs_dir, name="resume-check-whole", device=device)
    stop = threading.Event()
    first = start_run(cfg, runs_dir, name="resume-check-stopped", device=device, stop=stop,
                      on_status=_stop_after_first_epoch(stop))
    if first.state != RunState.STOPPED:
        return False, f"resume check on {describe_device(device)}: the run did not stop ({first.state}: {first.error})."
    resumed = resume_run(runs_dir, first.run_dir.name, device=device)
    passed = whole.state == resumed.state == RunState.COMPLETED
    return passed, (f"resume check on {describe_device(device)} ({RECIPE}, {EPOCHS} epochs, {data}): "
                    f"stopped after epoch {first.epochs_done}, resumed to {_outcome(resumed)}; "
                    f"without a stop: {_outcome(whole)}: {'passed' if passed else 'FAILED'}.")


def _outcome(result: RunResult) -> str:
    if result.state != RunState.COMPLETED:
        return f"{result.state} ({result.error})"
    return f"completed, test accuracy {result.test_acc:.2%}"
