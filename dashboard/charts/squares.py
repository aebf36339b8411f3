"""Class-by-class grids of clickable squares: the confusion matrix, and the Compare page's difference matrix
(run B's counts minus run A's). Rows are the true classes, columns the answers; a click is the point
selection "cell" (fields "true", "pred"), which dashboard/matrix.py turns into the chosen square."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from core.analysis import compare, mistakes
from dashboard.charts.labels import chart_labels


def matrix_frame(counts: np.ndarray, classes: list[str], normalise: bool) -> pd.DataFrame:
    """One row a square: true and predicted class (their `chart_labels`), count, share, label, dark."""
    shares = mistakes.row_normalise(counts)
    t, p = np.indices(counts.shape)  # (C, C) each
    labels = np.asarray(chart_labels(classes), dtype=object)
    frame = pd.DataFrame({
        "true": labels[t.ravel()], "pred": labels[p.ravel()],
        "count": counts.ravel(), "share": shares.ravel(),
    })
    frame["label"] = [f"{s:.0%}" for s in frame["share"]] if normalise else frame["count"].astype(str)
    shown = frame["share"] if normalise else frame["count"]
    frame["dark"] = np.sqrt(shown / shown.max()) > 0.6 if shown.max() > 0 else False  # white text on dark squares
    return frame


def matrix_chart(counts: np.ndarray, classes: list[str], normalise: bool, chosen: tuple[int, int] | None,
                 compact: bool = False) -> alt.LayerChart:
    """Rows the true classes, columns the predictions; a click selects a square (point selection "cell")."""
    tooltip = [alt.Tooltip("true:N", title="True class"), alt.Tooltip("pred:N", title="Predicted as"),
               alt.Tooltip("count:Q", title="Images"),
               alt.Tooltip("share:Q", title="Share of this true class", format=".1%")]
    # A square-root colour scale keeps the small off-diagonal counts visible next to the large diagonal.
    color = alt.Color("share:Q" if normalise else "count:Q", legend=None, scale=alt.Scale(type="sqrt", scheme="blues"))
    return clickable_squares(matrix_frame(counts, classes, normalise), classes, color, tooltip, chosen, compact)


def difference_frame(x: compare.Aligned, classes: list[str]) -> pd.DataFrame:
    """One row a square: B - A, both counts, the flips, and `better` (B's gain there) for the colour."""
    diff = compare.difference_counts(x)
    lost, gained = compare.flip_counts(x)
    t, p = np.indices(diff.shape)  # (C, C) each
    names = np.asarray(classes, dtype=object)
    better = np.where(t == p, diff, -diff)  # more right answers, or fewer of a mistake, is better for B
    frame = pd.DataFrame({
        "true": names[t.ravel()], "pred": names[p.ravel()], "diff": diff.ravel(), "better": better.ravel(),
        "lost": lost.ravel(), "gained": gained.ravel()})
    frame["label"] = [f"{d:+d}" if d else "0" for d in frame["diff"]]
    scale = max(1, int(np.abs(better).max()))
    frame["dark"] = np.abs(frame["better"]) / scale > 0.6  # white text on strong colours
    return frame


def difference_chart(x: compare.Aligned, classes: list[str], chosen: tuple[int, int] | None) -> alt.LayerChart:
    """Run B's confusion counts minus run A's: blue where B does better, red where it does worse."""
    frame = difference_frame(x, classes)
    scale = max(1, int(frame["better"].abs().max()))  # symmetric around 0: white means no change
    tooltip = [alt.Tooltip("true:N", title="True class"), alt.Tooltip("pred:N", title="Predicted as"),
               alt.Tooltip("diff:Q", title="Run B minus run A"),
               alt.Tooltip("lost:Q", title="Right in A, wrong in B"),
               alt.Tooltip("gained:Q", title="Wrong in A, right in B")]
    color = alt.Color("better:Q", legend=None, scale=alt.Scale(scheme="redblue", domain=[-scale, scale]))
    return clickable_squares(frame, classes, color, tooltip, chosen, grid=True)


def clickable_squares(frame: pd.DataFrame, classes: list[str], color: alt.Color, tooltip: list,
                      chosen: tuple[int, int] | None, compact: bool = False, grid: bool = False) -> alt.LayerChart:
    """A true-class by predicted-class grid of `frame`'s squares (columns true, pred, label, dark): coloured by
    `color`, labelled, clickable (point selection "cell"), the chosen square outlined; `grid` draws thin lines
    between squares (for a scale that is white in the middle).

    The squares carry the classes' `chart_labels` (`frame` may hold the names or the labels; a click sends
    the labels back, and `label_index` finds the class).
    """
    labels = chart_labels(classes)
    relabel = dict(zip(classes, labels))
    frame = frame.assign(**{k: frame[k].map(lambda v: relabel.get(v, v)) for k in ("true", "pred")})
    x = alt.X("pred:N", sort=labels, title="Predicted class", axis=alt.Axis(labelAngle=-40, labelOverlap=False))
    y = alt.Y("true:N", sort=labels, title="True class", axis=alt.Axis(labelOverlap=False))
    cell = alt.selection_point(name="cell", fields=["true", "pred"], on="click")
    squares = alt.Chart(frame).mark_rect(stroke="#ddd", strokeWidth=0.5) if grid else alt.Chart(frame).mark_rect()
    rect = squares.encode(x=x, y=y, tooltip=tooltip, color=color).add_params(cell)
    text = alt.Chart(frame).mark_text(fontSize=10 if compact else 12).encode(
        x=x, y=y, text="label:N", tooltip=tooltip,
        color=alt.condition("datum.dark", alt.value("white"), alt.value("#222")))
    layers = [rect, text]
    if chosen is not None:
        mark = frame[(frame["true"] == labels[chosen[0]]) & (frame["pred"] == labels[chosen[1]])]
        layers.append(alt.Chart(mark).mark_rect(fill=None, stroke="#e4572e", strokeWidth=3).encode(x=x, y=y))
    side = min(360, 30 * len(classes) + 40) if compact else min(560, 44 * len(classes) + 60)
    return alt.layer(*layers).properties(height=side, width=side)
