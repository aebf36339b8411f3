"""A sweep's charts, from core.sweep.points.sweep_points (one row a trial): accuracy trial after trial, accuracy
against each varied setting, and how much each setting explains."""
from __future__ import annotations

import altair as alt
import pandas as pd

from core.rundir.state import RunState
from dashboard.charts.labels import chart_labels, chart_text

# A trial's state (core.sweep.results.TrialResult.state) is one of its run's states, coloured in this order.
TRIAL_STATES = (RunState.COMPLETED, RunState.PRUNED, RunState.RUNNING, RunState.FAILED)
TRIAL_COLOURS = alt.Scale(domain=[str(s) for s in TRIAL_STATES], range=["#4c78a8", "#f58518", "#54a24b", "#e45756"])
# 0 to 100% on every sweep chart: axes that stay put while trials arrive, and side by side the same
ACCURACY_AXIS = dict(title="Validation accuracy", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%"))


def _trial_tooltip(settings: dict[str, str]) -> list[alt.Tooltip]:
    return [alt.Tooltip("trial:Q", title="Trial"), alt.Tooltip("state:N", title="State"),
            alt.Tooltip("accuracy:Q", title="Validation accuracy", format=".1%"),
            *(alt.Tooltip(f"{field}:N", title=chart_text(title)) for field, title in settings.items())]


def _state_colour(legend: bool = True) -> alt.Color:
    return alt.Color("state:N", title=None, scale=TRIAL_COLOURS, legend=alt.Legend(orient="top") if legend else None)


def sweep_progress_chart(points: pd.DataFrame, settings: dict[str, str], trials: int) -> alt.LayerChart:
    """Each trial's accuracy against its number, a dot coloured by its state, and the best completed accuracy
    so far as a step line. Trials without an accuracy (failed, or before their first epoch) are left out.

    The x-axis spans the sweep's `trials` from the start, so the chart fills up as they come. `settings` maps
    the varied fields (columns of `points`) to their names in words, for the tooltip.
    """
    x = alt.X("trial:Q", title="Trial", axis=alt.Axis(tickMinStep=1, format="d"),
              scale=alt.Scale(domain=[0, max(trials - 1, 1)], nice=False))
    best = alt.Chart(points.dropna(subset=["best"])).mark_line(interpolate="step-after", color="#333").encode(
        x=x, y=alt.Y("best:Q", **ACCURACY_AXIS), tooltip=[alt.Tooltip("best:Q", title="Best so far", format=".1%")])
    dots = alt.Chart(points.dropna(subset=["accuracy"])).mark_circle(size=80, opacity=0.9).encode(
        x=x, y=alt.Y("accuracy:Q", **ACCURACY_AXIS), color=_state_colour(), tooltip=_trial_tooltip(settings))
    return alt.layer(best, dots).properties(height=260)


def setting_chart(points: pd.DataFrame, field: str, title: str, settings: dict[str, str], *, log: bool = False,
                  order: list[str] | None = None, span: tuple[float, float] | None = None) -> alt.Chart:
    """Accuracy against one varied setting, one dot a trial coloured by state (without a legend: these charts sit
    under sweep_progress_chart's). A range's x-axis spans it (`span`, low and high), on a log scale for a log
    range; a list's choices stand side by side in `order` (column `field` of `points` then holds their names)."""
    shown, title = points.dropna(subset=["accuracy", field]), chart_text(title)
    if order is not None:
        relabel = dict(zip(order, chart_labels(order)))
        shown, order = shown.assign(**{field: shown[field].map(lambda v: relabel.get(v, v))}), list(relabel.values())
        slanted = max(map(len, order), default=0) > 18  # long names side by side would be cut short
        x = alt.X(f"{field}:N", title=title, sort=order, scale=alt.Scale(domain=order),  # every choice, tried or not
                  axis=alt.Axis(labelAngle=-25 if slanted else 0, labelLimit=170))
    else:
        scale = alt.Scale(type="log" if log else "linear", domain=list(span) if span else alt.Undefined,
                          zero=False, nice=not span)
        x = alt.X(f"{field}:Q", title=title, scale=scale)
    y = alt.Y("accuracy:Q", **{**ACCURACY_AXIS, "title": "Accuracy"})
    return alt.Chart(shown).mark_circle(size=70, opacity=0.85).encode(
        x=x, y=y, color=_state_colour(legend=False), tooltip=_trial_tooltip(settings)).properties(height=230)


def importance_chart(frame: pd.DataFrame) -> alt.Chart:
    """How much each setting explains the differences in accuracy (core.sweep.points.importance_frame), as bars."""
    return alt.Chart(frame).mark_bar(color="#4c78a8").encode(
        x=alt.X("share:Q", title="Share of the differences explained", axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("setting:N", title=None, sort="-x", axis=alt.Axis(labelLimit=200)),
        tooltip=[alt.Tooltip("setting:N", title="Setting"), alt.Tooltip("share:Q", title="Share", format=".0%")],
    ).properties(height=70 + 36 * len(frame))  # the axis and its title take their part of the height
