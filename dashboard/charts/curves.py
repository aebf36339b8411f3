"""Lines over the epochs or steps: a run's learning curves, several runs' curves overlaid, and a confusion
square's count after every epoch."""
from __future__ import annotations

import altair as alt
import pandas as pd

from dashboard.charts.labels import chart_text

SPLIT_COLOURS = alt.Scale(domain=["training", "validation"], range=["#4c78a8", "#e4572e"])


def curve_chart(frame: pd.DataFrame, title: str, *, log: bool = False, percent: bool = False) -> alt.LayerChart:
    """Training raw (faint) and smoothed, validation with a point an epoch, against epochs.

    `frame` is one metric of core.analysis.curves.live_curves.
    """
    title = chart_text(title)
    scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
    axis = alt.Axis(format="%") if percent else alt.Axis()
    encoding = dict(
        x=alt.X("epoch:Q", title="Epoch"),
        y=alt.Y("value:Q", title=title, scale=scale, axis=axis),
        color=alt.Color("split:N", title=None, scale=SPLIT_COLOURS, legend=alt.Legend(orient="top", symbolOpacity=1)),
        tooltip=[alt.Tooltip("split:N", title="Split"), alt.Tooltip("epoch:Q", format=".2f", title="Epoch"),
                 alt.Tooltip("step:Q", title="Step"), alt.Tooltip("value:Q", format=".4f", title=title)],
    )
    raw = frame[frame.kind == "raw"]
    smooth = frame[(frame.kind == "curve") & (frame.split == "training")]
    val = frame[frame.split == "validation"]
    layers = [alt.Chart(raw).mark_line(opacity=0.25).encode(**encoding),
              alt.Chart(smooth).mark_line().encode(**encoding),
              alt.Chart(val).mark_line(point=True).encode(**encoding)]
    return alt.layer(*layers).properties(height=260)


def overlay_chart(frame: pd.DataFrame, x: str, y: str, title: str, x_title: str, percent: bool) -> alt.Chart:
    """One line a run (column "run") of metric `y` against `x` ("epoch", with a point each, or "step").

    `frame` is one of core.analysis.curves.overlay_curves' tables; the page's heading names the metric, so the
    y-axis has no title of its own (`title` is the tooltip's).
    """
    axis = alt.Axis(format="%") if percent else alt.Axis()
    return alt.Chart(frame).mark_line(point=x == "epoch").encode(
        x=alt.X(f"{x}:Q", title=x_title),
        y=alt.Y(f"{y}:Q", title=None, scale=alt.Scale(zero=False), axis=axis),
        color=alt.Color("run:N", title=None, scale=alt.Scale(scheme="tableau10"),
                        legend=alt.Legend(orient="bottom", columns=1)),
        tooltip=[alt.Tooltip("run:N", title="Run"), alt.Tooltip(f"{x}:Q", title=x_title),
                 alt.Tooltip(f"{y}:Q", format=".4f", title=title)],
    ).properties(height=260)


def pair_history_chart(frame: pd.DataFrame) -> alt.LayerChart:
    """A confusion square's count (column "count") after every epoch, the epoch on show (column "shown") ringed."""
    x = alt.X("epoch:Q", title="Epoch", axis=alt.Axis(format="d", tickMinStep=1))
    y = alt.Y("count:Q", title="Pictures", scale=alt.Scale(zero=True), axis=alt.Axis(format="d", tickMinStep=1))
    tooltip = [alt.Tooltip("epoch:Q", title="Epoch"), alt.Tooltip("count:Q", title="Pictures")]
    base = alt.Chart(frame).encode(x=x, y=y, tooltip=tooltip)
    shown = base.transform_filter("datum.shown").mark_point(size=160, stroke="#e4572e", strokeWidth=3, filled=False)
    return alt.layer(base.mark_line(point=True), shown).properties(height=160)
