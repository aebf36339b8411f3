"""How runs are told apart and listed: their labels in pickers and legends, and the Runs page's table.

Pure functions of core.rundir.catalog.RunSummary (no Streamlit), unit-tested in tests/core/test_present.py.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pandas as pd

from core.rundir.catalog import RunSummary
from dashboard.wording import MISSING, created_text, data_label, format_duration

RUNS_COLUMNS = ["Name", "Model", "Data", "State", "Best val. accuracy", "Test accuracy", "Epochs done",
                "Epochs planned", "Duration", "Device", "Started", "Problem", "Run id"]


def unique_labels(summaries: Sequence[RunSummary]) -> dict[str, str]:
    """run_id -> a short label for legends and pickers: the run's name, and where runs share a name,
    its creation time ("alpha · 24 Nov 15:30"); the run id only where that still clashes.

    The time is added only on a clash: most names tell runs apart alone, and a date on every label
    would crowd the legends.
    """
    names = Counter(s.name for s in summaries)
    labels = {s.run_id: s.name if names[s.name] == 1 else f"{s.name} · {created_text(s.created_at) or s.run_id}"
              for s in summaries}
    clashes = Counter(labels.values())  # same name, same minute: only the id is left to tell them apart
    return {run_id: label if clashes[label] == 1 else f"{label} · {run_id}" for run_id, label in labels.items()}


def run_labels(summaries: Sequence[RunSummary]) -> dict[str, str]:
    """run_id -> a run picker's label: its unique label and its current state ("alpha · running")."""
    names = unique_labels(summaries)
    return {s.run_id: f"{names[s.run_id]} · {s.state}" for s in summaries}


def runs_table(summaries: Sequence[RunSummary]) -> pd.DataFrame:
    """One row a run, in the given order; accuracies stay fractions (0..1) for the table to format.

    Missing numbers stay empty (NaN, <NA>) so the columns still sort as numbers; the table shows them as
    MISSING through its placeholder. Missing words are MISSING here; an empty Problem means none."""
    rows = []
    for s in summaries:
        rows.append({
            "Name": s.name, "Model": s.model or MISSING, "Data": data_label(s.data), "State": s.state,
            "Best val. accuracy": s.best_val_acc, "Test accuracy": s.test_acc, "Epochs done": s.epoch,
            "Epochs planned": s.epochs, "Duration": format_duration(s.duration_s) or MISSING,
            "Device": s.device or MISSING,
            "Started": pd.to_datetime(s.created_at, unit="s") if s.created_at else pd.NaT,
            "Problem": s.error or "", "Run id": s.run_id,
        })
    table = pd.DataFrame(rows, columns=RUNS_COLUMNS)
    for column in ("Best val. accuracy", "Test accuracy"):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    for column in ("Epochs done", "Epochs planned"):
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("Int64")
    return table
