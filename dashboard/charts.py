"""The dashboard's Altair charts as pure functions of tables: no Streamlit here.

The Errors, Calibration, Train, Map and Sweeps pages draw them with st.altair_chart; the one-file report
(dashboard/report/build.py) exports the same charts to HTML, so a chart looks the same in both places and
the report's command line never imports Streamlit's caches.

Text from outside (class names, choices) enters a chart only through `chart_labels`/`chart_text`: Vega-Lite
writes a sort list into an expression, whose parser ends a string at U+2028 or U+2029, so one class name
holding either left the whole chart blank; and a lone surrogate cannot be sent at all.
"""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from core.analysis import mistakes
from core.analysis.calibration import Reliability
from core.rundir.predictions import Predictions
from dashboard.text import one_line

SPLIT_COLOURS = alt.Scale(domain=["training", "validation"], range=["#4c78a8", "#e4572e"])
ANSWERS = ("Right", "Mistake")  # the map's shapes: a circle for a right answer, a cross for a mistake


# ---------------------------------------------------------------------------------------------
# Text safe for a chart
# ---------------------------------------------------------------------------------------------

def chart_text(text: object) -> str:
    """`text` as a chart may carry it anywhere (data, sort lists, titles): printable characters on one line,
    each line or paragraph break, control, format character or lone surrogate a space (as pages show it)."""
    return one_line(text)


def chart_labels(names: list[str]) -> list[str]:
    """A chart label a name, all different: the name itself when it is safe (`chart_text` keeps it), else its
    chart text, numbered " (2)", " (3)"... when another name already shows that way.

    No label of an unsafe name equals any of `names`, so a label clicked on a chart leads back to one name
    whether the page looks it up among the labels or among the names (see `label_index`).
    """
    labels = [name if chart_text(name) == name else None for name in names]
    taken = {label for label in labels if label is not None}
    for k, name in enumerate(names):
        if labels[k] is None:
            label, copy = chart_text(name), 1
            while label in taken:
                copy += 1
                label = f"{chart_text(name)} ({copy})"
            labels[k] = label
            taken.add(label)
    return labels


def label_index(names: list[str], label: str) -> int | None:
    """The position in `names` of a name or of its chart label (what a click on a chart sends), else None."""
    labels = chart_labels(names)
    if label in labels:
        return labels.index(label)
    return names.index(label) if label in names else None


# ---------------------------------------------------------------------------------------------
# Learning curves
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Confusion matrix
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Reliability diagram (calibration)
# ---------------------------------------------------------------------------------------------

def reliability_frame(rel: Reliability) -> pd.DataFrame:
    """One row a non-empty confidence bin: its borders, pictures, mean confidence and accuracy."""
    kept = rel.count > 0
    lo, hi = rel.edges[:-1][kept], rel.edges[1:][kept]
    return pd.DataFrame({
        "lo": lo, "hi": hi, "bin": [f"{a:.0%}–{b:.0%}" for a, b in zip(lo, hi)],
        "pictures": rel.count[kept], "confidence": rel.confidence[kept], "accuracy": rel.accuracy[kept],
    })


def reliability_chart(rel: Reliability, width: int | None = None) -> alt.VConcatChart:
    """Accuracy per confidence bin (bars) against the diagonal of perfect calibration, and below it how
    many pictures each bin holds: a bar below the diagonal is a bin where the model was over-confident.

    `width` in pixels for both parts (the report); None leaves it to the page's container.
    """
    frame = reliability_frame(rel)
    x = alt.X("lo:Q", title="How sure the model was (top-class probability)", scale=alt.Scale(domain=[0, 1]),
              axis=alt.Axis(format="%", values=[k / 10 for k in range(11)]))
    tooltip = [alt.Tooltip("bin:N", title="Confidence"), alt.Tooltip("pictures:Q", title="Pictures", format=","),
               alt.Tooltip("confidence:Q", title="Mean confidence", format=".1%"),
               alt.Tooltip("accuracy:Q", title="Right", format=".1%")]
    # y2 at 0: a bar spanning x..x2 is otherwise drawn as a thin band at its y.
    bars = alt.Chart(frame).mark_bar(color="#4c78a8", stroke="white").encode(
        x=x, x2="hi:Q", y=alt.Y("accuracy:Q", title="How often it was right", scale=alt.Scale(domain=[0, 1]),
                                 axis=alt.Axis(format="%")), y2=alt.datum(0), tooltip=tooltip)
    means = alt.Chart(frame).mark_point(color="#e4572e", filled=True, size=45, opacity=1).encode(
        x=alt.X("confidence:Q"), y=alt.Y("accuracy:Q"), tooltip=tooltip)
    diagonal = alt.Chart(pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0]})).mark_line(
        color="#888", strokeDash=[5, 4]).encode(x="x:Q", y="y:Q")
    size = {"width": width} if width else {}
    top = alt.layer(bars, diagonal, means).properties(height=280, **size)
    counts = alt.Chart(frame).mark_bar(color="#9ab3cf", stroke="white").encode(
        x=x, x2="hi:Q", y=alt.Y("pictures:Q", title="Pictures"), y2=alt.datum(0), tooltip=tooltip)
    labels = alt.Chart(frame).mark_text(dy=-6, fontSize=10).encode(
        x=alt.X("mid:Q"), y="pictures:Q", text=alt.Text("pictures:Q", format=",")).transform_calculate(
        mid="(datum.lo + datum.hi) / 2")
    bottom = alt.layer(counts, labels).properties(height=110, **size)
    return alt.vconcat(top, bottom, spacing=8)


# ---------------------------------------------------------------------------------------------
# The test-set map (t-SNE of the penultimate features)
# ---------------------------------------------------------------------------------------------

def map_frame(xy: np.ndarray, preds: Predictions, classes: list[str], chosen: tuple[int, int] | None,
              thumbnails: dict[int, str] | None = None) -> pd.DataFrame:
    """One row a test picture: its place `xy` (N, 2), classes, confidence, whether it is in the `chosen`
    (true, predicted) square, and its thumbnail data URI where `thumbnails` (position -> URI) has one
    (column "image", "" for the others). Classes appear as their `chart_labels`."""
    names = np.asarray(chart_labels(classes), dtype=object)
    right = preds.labels == preds.pred
    in_square = ((preds.labels == chosen[0]) & (preds.pred == chosen[1])) if chosen else np.zeros(len(right), bool)
    frame = pd.DataFrame({
        "x": xy[:, 0], "y": xy[:, 1], "picture": preds.index,
        "true": names[preds.labels], "said": names[preds.pred],
        "sure": preds.probs[np.arange(len(right)), preds.pred].astype(np.float32),
        "answer": np.where(right, ANSWERS[0], ANSWERS[1]), "square": in_square,
    })
    if thumbnails:
        # "" rather than null: Vega-Lite would write null as the text "null", an image that cannot load.
        frame["image"] = pd.Series(thumbnails, dtype=object).reindex(range(len(frame))).fillna("").to_numpy()
    return frame


def map_chart(frame: pd.DataFrame, highlight: bool, *, interactive: bool = True,
              width: int | None = None) -> alt.Chart:
    """Dots coloured by true class, crosses for mistakes, the `highlight`ed square's dots large.

    Interactive (the Map page): a dragged box is the interval selection "box", a clicked dot the point
    selection "dot" (field "picture"), drawn with a dark ring. The report draws it without selections.
    A column "image" (a data URI) shows as a picture in the tooltip (vega-tooltip's `image` key).
    """
    faded = 0.15 if highlight else 0.75  # with a chosen square, the rest step back
    tooltip = [alt.Tooltip("picture:Q", title="Picture"), alt.Tooltip("true:N", title="True class"),
               alt.Tooltip("said:N", title="Model said"), alt.Tooltip("sure:Q", title="Sure", format=".0%")]
    if "image" in frame.columns:
        tooltip.append(alt.Tooltip("image:N", title="image"))
    encoding = {
        "x": alt.X("x:Q", axis=None), "y": alt.Y("y:Q", axis=None),
        "color": alt.Color("true:N", title="True class"),
        "shape": alt.Shape("answer:N", title="Answer",
                           scale=alt.Scale(domain=list(ANSWERS), range=["circle", "cross"])),
        "opacity": alt.condition("datum.square", alt.value(1.0), alt.value(faded)),
        "size": alt.condition("datum.square", alt.value(90), alt.value(30)),
        "tooltip": tooltip,
    }
    chart = alt.Chart(frame).mark_point(filled=True, size=30)
    if interactive:
        box = alt.selection_interval(name="box", encodings=["x", "y"])
        dot = alt.selection_point(name="dot", fields=["picture"], on="click", empty=False)
        encoding.update(stroke=alt.value("#111"), strokeWidth=alt.condition(dot, alt.value(2.5), alt.value(0)))
        chart = chart.encode(**encoding).add_params(box, dot)
    else:
        chart = chart.encode(**encoding)
    return chart.properties(height=520, **({"width": width} if width else {}))


# ---------------------------------------------------------------------------------------------
# Sweeps: frames from core.sweep.points.sweep_points (one row a trial)
# ---------------------------------------------------------------------------------------------

TRIAL_COLOURS = alt.Scale(domain=["completed", "pruned", "running", "failed"],
                          range=["#4c78a8", "#f58518", "#54a24b", "#e45756"])
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
    """How much each setting explains the differences in accuracy (dashboard.sweep_words.importance_table), as bars."""
    return alt.Chart(frame).mark_bar(color="#4c78a8").encode(
        x=alt.X("share:Q", title="Share of the differences explained", axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("setting:N", title=None, sort="-x", axis=alt.Axis(labelLimit=200)),
        tooltip=[alt.Tooltip("setting:N", title="Setting"), alt.Tooltip("share:Q", title="Share", format=".0%")],
    ).properties(height=70 + 36 * len(frame))  # the axis and its title take their part of the height
