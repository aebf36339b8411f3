"""The Sweeps page's words: a setting's range, the trials table, the best trial and why a trial failed.

The page names settings with the Train page's words, passed in as `label` and `words`; the numbers (each
trial's accuracy, the importances) come from core.sweep.points. No Streamlit here.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from core.sweep import Param, SweepResults, TrialResult
from core.sweep.points import importance_frame, trial_accuracy
from dashboard.wording import MISSING

Label = Callable[[str], str]  # field -> its name in plain words
Words = Callable[[str, Any], str]  # (field, value) -> the value in plain words

STOPPED_TRIAL = "Stopped with the sweep; its run can be resumed on its own from the Train page."


def short_number(value: Any) -> str:
    """A setting's value, short: 0.0085, 1e-05, 512, adam."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def setting_value(field: str, value: Any, words: Words) -> str:
    return words(field, value) if isinstance(value, (str, bool)) else short_number(value)


def describe_param(param: Param, label: Label, words: Words) -> str:
    """'Learning rate from 0.0001 to 0.01 (log scale)', 'Optimiser: Adam (forgiving) or SGD ...'."""
    if param.choices is not None:
        return f"{label(param.field)}: {' or '.join(setting_value(param.field, c, words) for c in param.choices)}"
    scale = " (log scale)" if param.log else ""
    return f"{label(param.field)} from {short_number(param.low)} to {short_number(param.high)}{scale}"


def trial_problem(trial: TrialResult) -> str:
    """Why a trial failed, in one sentence ('' when it did not): its error, or that a stop request ended it."""
    if trial.error:
        return trial.error
    return STOPPED_TRIAL if trial.state == "failed" and trial.run_state == "stopped" else ""


def trials_table(results: SweepResults, label: Label, words: Words) -> pd.DataFrame:
    """The Sweeps page's table, one row a trial by number: its state, accuracy, settings (choices in words,
    numbers as numbers), epochs, run name and problem."""
    def shown(field: str, value: Any) -> Any:
        return words(field, value) if isinstance(value, (str, bool)) else value

    fields = [p.field for p in results.sweep.space]
    rows = []
    for t in sorted(results.trials, key=lambda t: t.number):
        rows.append({"Trial": t.number, "State": t.state, "Validation accuracy": trial_accuracy(t),
                     **{label(f): shown(f, t.params.get(f)) for f in fields},
                     "Epochs done": f"{t.epochs_done} of {t.epochs}" if t.epochs else str(t.epochs_done),
                     "Run": t.run_name or t.run_id or MISSING, "Problem": trial_problem(t)})
    columns = ["Trial", "State", "Validation accuracy", *map(label, fields), "Epochs done", "Run", "Problem"]
    table = pd.DataFrame(rows, columns=columns)
    table["Validation accuracy"] = pd.to_numeric(table["Validation accuracy"], errors="coerce")
    return table


def best_text(results: SweepResults, label: Label, words: Words) -> str | None:
    """'Trial #2: Learning rate 0.0085, Optimiser Adam (forgiving)'; None before a trial has completed."""
    best = results.best
    if best is None:
        return None
    settings = ", ".join(f"{label(p.field)} {setting_value(p.field, best.params.get(p.field), words)}"
                         for p in results.sweep.space)
    return f"Trial #{best.number}: {settings}"


def importance_table(importances: Mapping[str, float], label: Label) -> pd.DataFrame:
    """core.sweep.points.importance_frame with each setting in words: `setting` and its `share`, most important first."""
    ranked = importance_frame(importances)
    return pd.DataFrame({"setting": [label(f) for f in ranked["field"]], "share": ranked["share"]},
                        columns=["setting", "share"])
