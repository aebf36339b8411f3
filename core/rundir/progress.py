"""How far a run has come, from its status.json and its state: the numbers of its progress bar.

The dashboard puts them in words (dashboard/wording.progress_line); the bench reads them as the live
page does.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.rundir.state import RunState


@dataclass(frozen=True)
class Progress:
    """A run's progress at one moment."""
    state: str  # the run's state (RunState's strings)
    fraction: float  # 0..1, the bar's length; 1 once completed
    epoch: int  # the epoch under way while running, else the last finished one
    epochs: int  # epochs planned
    step: int  # optimiser steps done
    total_steps: int | None  # steps planned, when status.json says
    eta_seconds: float | None  # time left while running, when status.json says


def run_progress(status: Mapping[str, Any], state: str) -> Progress:
    """The progress of a run whose status.json holds `status`, in `state` (catalog.effective_state)."""
    fraction = min(max(float(status.get("progress") or 0.0), 0.0), 1.0)
    epochs, done = status.get("epochs") or 0, status.get("epoch") or 0
    if state == RunState.COMPLETED:
        fraction = 1.0
    running = state == RunState.RUNNING
    eta = status.get("eta_seconds")
    return Progress(state=state, fraction=fraction, epoch=min(done + 1, epochs) if running else done,
                    epochs=epochs, step=status.get("step") or 0, total_steps=status.get("total_steps") or None,
                    eta_seconds=float(eta) if running and isinstance(eta, (int, float)) else None)
