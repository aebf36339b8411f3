"""Bar charts: a picture's most likely classes, pictures per class in each set, and how many pictures were
first learned after each epoch."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from core.analysis import mistakes
from dashboard.charts.labels import chart_labels


def top_k_chart(probs_row: np.ndarray, classes: list[str], k: int) -> alt.Chart:
    """The `k` most likely classes of one picture's probabilities (C,), most likely on top."""
    top = mistakes.top_k(probs_row, min(k, len(classes)))
    frame = pd.DataFrame({"class": [classes[c] for c, _ in top], "probability": [p for _, p in top]})
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("probability:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1]), title="Probability"),
        y=alt.Y("class:N", sort="-x", title=None),
        tooltip=["class", alt.Tooltip("probability:Q", format=".1%")],
    ).properties(height=30 * len(top) + 20)


def class_counts_chart(counts: pd.DataFrame, sets: list[str]) -> alt.Chart:
    """Pictures per class, the `sets` (columns of `counts`, one row a class in column "Class") side by side.

    The classes are shown as their `chart_labels`, in `counts`' order (the chart's sort list holds them).
    """
    shown = counts.assign(Class=chart_labels(list(counts["Class"])))
    long = shown.melt(id_vars="Class", value_vars=sets, var_name="Set", value_name="Pictures")
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("Class:N", title=None, sort=list(shown["Class"])),
        xOffset=alt.XOffset("Set:N", sort=sets),
        y=alt.Y("Pictures:Q"),
        color=alt.Color("Set:N", sort=sets, title=None, legend=alt.Legend(orient="top")),
        tooltip=["Class:N", "Set:N", "Pictures:Q"],
    ).properties(height=300)


def first_learned_chart(epochs: np.ndarray, first: np.ndarray, for_good: np.ndarray) -> alt.Chart:
    """For each epoch, the pictures first right after it and those right from it on without a slip, side by side
    (core.analysis.dynamics.first_learned_counts)."""
    frame = pd.DataFrame({
        "epoch": np.concatenate([epochs, epochs]), "count": np.concatenate([first, for_good]),
        "what": ["first right"] * len(first) + ["right for good from"] * len(for_good)})
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("epoch:O", title="Epoch", axis=alt.Axis(labelAngle=0)), xOffset="what:N",
        y=alt.Y("count:Q", title="Pictures"), color=alt.Color("what:N", title=None),
        tooltip=[alt.Tooltip("epoch:O", title="Epoch"), alt.Tooltip("what:N", title="Pictures"),
                 alt.Tooltip("count:Q", title="How many")],
    ).properties(height=240)
