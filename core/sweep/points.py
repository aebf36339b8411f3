"""What a sweep's trials reached, as the numbers the Sweeps page charts: each trial's accuracy, the best so far
trial by trial, and the settings ranked by how much they explain (from core.sweep.results).

The page names the settings and states in words (dashboard/sweep_words.py); nothing here is wording.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from core.sweep.results import SweepResults, TrialResult


def trial_accuracy(trial: TrialResult) -> float | None:
    """What a trial has reached: a completed one its best validation accuracy, a running or pruned one the
    accuracy it reported after its latest epoch; None for a failed one, or before the first epoch."""
    if trial.state == "completed":
        return trial.value
    if trial.state in ("running", "pruned"):
        return trial.last_value
    return None


def sweep_points(results: SweepResults) -> pd.DataFrame:
    """One row a trial, by number: `trial`, `state`, `accuracy` (trial_accuracy), `best` (the best completed
    accuracy up to this trial, NaN before the first) and each varied setting's raw value under its field name."""
    fields = [p.field for p in results.sweep.space]
    rows, best = [], math.nan
    for t in sorted(results.trials, key=lambda t: t.number):
        if t.state == "completed" and t.value is not None:
            best = t.value if math.isnan(best) else max(best, t.value)
        rows.append({"trial": t.number, "state": t.state, "accuracy": trial_accuracy(t), "best": best,
                     **{f: t.params.get(f) for f in fields}})
    frame = pd.DataFrame(rows, columns=["trial", "state", "accuracy", "best", *fields])
    for column in ("accuracy", "best"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def importance_frame(importances: Mapping[str, float]) -> pd.DataFrame:
    """One row a setting, most important first: its `field` and its `share` (0..1) of the explained differences."""
    frame = pd.DataFrame({"field": list(importances), "share": list(importances.values())}, columns=["field", "share"])
    return frame.sort_values("share", ascending=False, ignore_index=True)
