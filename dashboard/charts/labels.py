"""Text from outside (class names, choices, setting names) made safe for a chart.

Text enters a chart only through `chart_labels`/`chart_text`: Vega-Lite writes a sort list into an
expression, whose parser ends a string at U+2028 or U+2029, so one class name holding either left the
whole chart blank; and a lone surrogate cannot be sent at all.
"""
from __future__ import annotations

from dashboard.text import one_line


def chart_text(text: object) -> str:
    """`text` as a chart may carry it anywhere (data, sort lists, titles): printable characters on one line,
    each line or paragraph break, control, format character or lone surrogate a space (as pages show it)."""
    return one_line(text)


def chart_labels(names: list[str]) -> list[str]:
    """A chart label a name, all different: the name itself when it is safe (`chart_text` keeps it), else its
    chart text, numbered " (2)", " (3)"... when another name already shows that way.

    No label of an unsafe name equals any of `names`, so a label clicked on a chart leads back to one name
    whether the page looks it up among the labels or among the names (see `label_index`). Labels are safe and
    all different, so the labels of labels are the labels themselves.
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
