"""A chart as the Vega-Lite spec that st.vega_lite_chart draws: what a page keeps in its cache when it draws
the same chart again and again (the live view, every refresh), since building an Altair chart and checking it
against Vega-Lite's schema is most of what drawing it costs the server."""
from __future__ import annotations

from typing import Any

import altair as alt

# Altair's default theme gives every chart a 300-pixel view; st.altair_chart draws with no theme (the chart
# fills its column, as `width="stretch"` asks), so the same chart drawn from its spec leaves them out too.
_DEFAULT_THEME_VIEW = ("continuousWidth", "continuousHeight")


def vega_spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """`chart`'s Vega-Lite spec with its data inline, checked against the schema as st.altair_chart checks it."""
    spec = chart.to_dict()
    view = spec.get("config", {}).get("view", {})
    for name in _DEFAULT_THEME_VIEW:
        view.pop(name, None)
    if "config" in spec and not view:
        spec["config"].pop("view", None)
        if not spec["config"]:
            del spec["config"]
    return spec
