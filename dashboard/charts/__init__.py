"""The dashboard's Altair charts as pure functions of tables: no Streamlit here, and no chart anywhere else.

Pages draw them with st.altair_chart, or from their cached spec (`vega_spec`) where they redraw them on every
refresh; the one-file report (dashboard/report.py) exports the same charts to
HTML, so a chart looks the same in both places and the report's command line never imports Streamlit's
caches. One module a kind of chart, all of them importable from here (`charts.matrix_chart`):

    labels       text from outside (class names, choices) made safe for a chart
    curves       learning curves, several runs' curves overlaid, a square's count after every epoch
    squares      the clickable confusion matrix and the Compare page's difference matrix
    reliability  the reliability diagram (calibration)
    maps         the test-set map (t-SNE) and the data map of learning dynamics
    bars         top classes of a picture, pictures per class, pictures first learned per epoch
    sweeps       a sweep's trials: progress, accuracy against each setting, setting importance
    specs        a chart as the Vega-Lite spec a page keeps in its cache
"""
from __future__ import annotations

from dashboard.charts.bars import class_counts_chart, first_learned_chart, top_k_chart
from dashboard.charts.curves import SPLIT_COLOURS, curve_chart, overlay_chart, pair_history_chart
from dashboard.charts.labels import chart_labels, chart_text, label_index
from dashboard.charts.maps import ANSWERS, REGION_COLOURS, data_map_chart, map_chart, map_frame
from dashboard.charts.reliability import reliability_chart, reliability_frame
from dashboard.charts.specs import vega_spec
from dashboard.charts.squares import clickable_squares, difference_chart, difference_frame, matrix_chart, matrix_frame
from dashboard.charts.sweeps import ACCURACY_AXIS, TRIAL_COLOURS, importance_chart, setting_chart, sweep_progress_chart

__all__ = [
    "ACCURACY_AXIS", "ANSWERS", "REGION_COLOURS", "SPLIT_COLOURS", "TRIAL_COLOURS",
    "chart_labels", "chart_text", "class_counts_chart", "clickable_squares", "curve_chart", "data_map_chart",
    "difference_chart", "difference_frame", "first_learned_chart", "importance_chart", "label_index", "map_chart",
    "map_frame", "matrix_chart", "matrix_frame", "overlay_chart", "pair_history_chart", "reliability_chart",
    "reliability_frame", "setting_chart", "sweep_progress_chart", "top_k_chart", "vega_spec",
]
