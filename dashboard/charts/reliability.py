"""The reliability diagram (calibration): accuracy per confidence bin against the diagonal of perfect
calibration, with the number of pictures in each bin below it."""
from __future__ import annotations

import altair as alt
import pandas as pd

from core.analysis.calibration import Reliability


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
