"""Maps of pictures, one dot a picture: the test-set map (t-SNE of the penultimate features) and the data map
of learning dynamics (dataset cartography)."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from core.analysis import dynamics
from core.rundir.predictions import Predictions
from dashboard.charts.labels import chart_labels

ANSWERS = ("Right", "Mistake")  # the test-set map's shapes: a circle for a right answer, a cross for a mistake
REGION_COLOURS = ("#59a14f", "#f28e2b", "#e15759")  # the data map's easy, ambiguous, hard


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
# The data map of learning dynamics (dataset cartography)
# ---------------------------------------------------------------------------------------------

def data_map_chart(frame: pd.DataFrame) -> alt.LayerChart:
    """Each validation picture's mean confidence in its true class against its variability, coloured by region,
    the region borders dashed; a dragged box is the interval selection "box".

    `frame`: one row a picture with picture, true, confidence, variability, region, forgotten, first_right.
    """
    box = alt.selection_interval(name="box", encodings=["x", "y"])
    points = alt.Chart(frame).mark_circle(size=28, opacity=0.7).encode(
        x=alt.X("variability:Q", title="Variability (how much its confidence changed)",
                scale=alt.Scale(domain=[0, 0.5], clamp=True)),  # the largest spread of values in 0..1
        y=alt.Y("confidence:Q", title="Mean confidence in the true class",
                scale=alt.Scale(domain=[0, 1], clamp=True)),
        color=alt.Color("region:N", title="Region", scale=alt.Scale(domain=list(dynamics.REGIONS),
                                                                     range=list(REGION_COLOURS))),
        tooltip=[alt.Tooltip("picture:Q", title="Picture"), alt.Tooltip("true:N", title="True class"),
                 alt.Tooltip("region:N", title="Region"),
                 alt.Tooltip("confidence:Q", title="Mean confidence", format=".2f"),
                 alt.Tooltip("variability:Q", title="Variability", format=".2f"),
                 alt.Tooltip("forgotten:Q", title="Times forgotten"),
                 alt.Tooltip("first_right:N", title="First right after epoch")],
    ).add_params(box)
    # The region borders, dashed: left of the vertical line the height decides easy or hard.
    vertical = alt.Chart(pd.DataFrame({"x": [dynamics.AMBIGUOUS_SPREAD]})).mark_rule(strokeDash=[4, 4]).encode(x="x:Q")
    horizontal = alt.Chart(pd.DataFrame({"x": [0.0], "x2": [dynamics.AMBIGUOUS_SPREAD],
                                         "y": [dynamics.EASY_CONFIDENCE]})).mark_rule(strokeDash=[4, 4]).encode(
        x="x:Q", x2="x2:Q", y="y:Q")
    return alt.layer(points, vertical, horizontal).properties(height=420)
