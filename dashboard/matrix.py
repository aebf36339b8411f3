"""The clickable confusion matrix and its chosen square's pictures, shared by the Errors page and the
Train page's live view (dashboard/live_mistakes.py).

Each user passes its own key prefix ("errors", "live_mistakes"), so the two keep their own chosen
square and chart state. A square is chosen by a click on the chart (an Altair point selection with
on_select) or by a button (`on_button`); both end in `choose_cell`, which stores class *names* in
st.session_state, so the choice survives a live refresh and the next epoch's matrix.
"""
from __future__ import annotations

from functools import partial

import altair as alt
import numpy as np
import streamlit as st

from core.analysis import mistakes
from core.rundir import predictions
from dashboard import tiles
from dashboard.charts import label_index, matrix_chart, vega_spec
from dashboard.text import plain

# The Errors page's own state, set from a link's address by `open_from_link` (the page reads the same keys).
ERRORS_PREFIX = "errors"
ERRORS_PAGE = "views/errors.py"  # relative to dashboard/app.py, as st.page_link wants it
ERRORS_SPLIT_KEY = "errors_split"
ERRORS_EPOCH_KEY = "errors_epoch"
ERRORS_NEWEST_SEEN_KEY = "errors_newest_epoch_seen"
CHOOSE_HINT = "Click a square of the matrix, or a pair button, to see its pictures here."


def _cell_key(prefix: str) -> str:
    return f"{prefix}_cell"  # (true name, predicted name) of the chosen square


def _chart_gen_key(prefix: str) -> str:
    return f"{prefix}_chart_gen"  # bumped when a button picks a square: the chart restarts unselected


def _page_key(prefix: str) -> str:
    return f"{prefix}_cell_page"


# ---------------------------------------------------------------------------------------------
# Choosing a square: the chart's click and the buttons both end here
# ---------------------------------------------------------------------------------------------

def choose_cell(prefix: str, true_name: str, pred_name: str) -> None:
    st.session_state[_cell_key(prefix)] = (true_name, pred_name)
    st.session_state[_page_key(prefix)] = 1


def on_button(prefix: str, true_name: str, pred_name: str) -> None:
    choose_cell(prefix, true_name, pred_name)
    # The chart keeps its own highlighted point; a new chart key drops it, so a later click on that
    # same square still counts as a change.
    st.session_state[_chart_gen_key(prefix)] = st.session_state.get(_chart_gen_key(prefix), 0) + 1


def _on_chart_click(prefix: str, chart_key: str) -> None:
    picked = st.session_state[chart_key].selection.get("cell") or []
    if picked:  # a click beside the squares clears the chart's point: keep the chosen square then
        choose_cell(prefix, picked[0]["true"], picked[0]["pred"])


def chosen_cell(prefix: str, classes: list[str]) -> tuple[int, int] | None:
    chosen = st.session_state.get(_cell_key(prefix))
    if not chosen:
        return None
    # A click stores the chart's labels (charts.chart_labels), a button or a link the class names themselves.
    t, p = (label_index(classes, name) for name in chosen)
    return None if t is None or p is None else (t, p)


# ---------------------------------------------------------------------------------------------
# The matrix (the chart itself is dashboard/charts/squares.py, which the report exports too)
# ---------------------------------------------------------------------------------------------

def show_matrix(prefix: str, counts: np.ndarray, classes: list[str], chosen: tuple[int, int] | None, *,
                normalise: bool = False, compact: bool = False) -> None:
    """The chart; a click on a square chooses it (and reruns only the fragment it is drawn in)."""
    draw_clickable(prefix, _matrix_spec(counts, tuple(classes), normalise, chosen, compact))
    st.caption("Rows are the true classes, columns what the model said. Click a square to see its pictures.")


@st.cache_data(max_entries=32, show_spinner=False)
def _matrix_spec(counts: np.ndarray, classes: tuple[str, ...], normalise: bool, chosen: tuple[int, int] | None,
                 compact: bool) -> dict:
    # The live view draws the same epoch's matrix at every refresh until the next epoch ends.
    return vega_spec(matrix_chart(counts, list(classes), normalise, chosen, compact))


def draw_clickable(prefix: str, chart: alt.TopLevelMixin | dict) -> None:
    """Draw `chart` (or its charts.vega_spec), whose point selection "cell" (fields "true", "pred": class names)
    chooses a square.

    Any page's square-per-class chart can use it (the Compare page's difference matrix does).
    """
    chart_key = f"{prefix}_matrix_{st.session_state.get(_chart_gen_key(prefix), 0)}"
    spec = chart if isinstance(chart, dict) else vega_spec(chart)
    st.vega_lite_chart(spec, key=chart_key, selection_mode="cell", width="stretch",
                       on_select=partial(_on_chart_click, prefix, chart_key))


# ---------------------------------------------------------------------------------------------
# The chosen square's pictures
# ---------------------------------------------------------------------------------------------

def show_cell(prefix: str, preds: predictions.Predictions, classes: list[str], chosen: tuple[int, int] | None,
              images, reason: str | None, *, bars: str = "inline", columns: int = tiles.TILE_COLUMNS) -> None:
    """The chosen square's title and its pictures (bars, columns: as tiles.prediction_tiles)."""
    positions = cell_heading(preds, classes, chosen)
    if positions is not None:
        cell_pictures(prefix, preds, classes, positions, images, reason, bars=bars, columns=columns)


def cell_heading(preds: predictions.Predictions, classes: list[str],
                 chosen: tuple[int, int] | None) -> np.ndarray | None:
    """The chosen square's title and count; returns its pictures' positions, most confident first.

    None (after a line saying how to choose one) when no square is chosen.
    """
    if chosen is None:
        st.info(CHOOSE_HINT)
        return None
    t, p = chosen
    positions = mistakes.cell_positions(preds.labels, preds.pred, preds.probs, t, p)
    title = (f"{plain(classes[t])} recognised correctly" if t == p
             else f"{plain(classes[t])} taken for {plain(classes[p])}")
    st.subheader(title)
    st.caption(f"{len(positions)} pictures, the most confident prediction first.")
    return positions


def cell_pictures(prefix: str, preds: predictions.Predictions, classes: list[str], positions: np.ndarray,
                  images, reason: str | None, *, bars: str = "inline", columns: int = tiles.TILE_COLUMNS,
                  looks=None) -> None:
    """One page of the chosen square's pictures (`positions` from cell_heading), with a page picker.

    looks: where_looked.toggle's answer, to colour the pictures by where the model looked.
    """
    if not len(positions):
        return
    if images is None:
        st.caption(f"The pictures themselves are not available here. {plain(reason or '')}")
    page = tiles.page_picker(len(positions), _page_key(prefix))
    tiles.prediction_tiles(preds, mistakes.page_of(positions, page, tiles.TILES_PER_PAGE), images, classes,
                           bars=bars, columns=columns, looks=looks)


# ---------------------------------------------------------------------------------------------
# Going to the Errors page at an epoch
# ---------------------------------------------------------------------------------------------

# The live view's link to the Errors page says which epoch and square to open in its query parameters, so
# the address is also one a user can bookmark or send.
LINK_EPOCH, LINK_TRUE, LINK_PRED = "epoch", "true", "pred"


def errors_page_link(prefix: str, epoch: int) -> None:
    """A link opening the Errors page at `epoch` with this matrix's chosen square.

    A link rather than a button calling st.switch_page: switching pages from inside the live view's
    fragment raced with the fragment's timed refresh, and the browser could be sent the old page's
    elements for the new one (Streamlit's "Bad delta path index") and go blank. A link is an ordinary
    page change, made by the browser, like a click in the sidebar."""
    params = {LINK_EPOCH: str(epoch)}
    cell = st.session_state.get(_cell_key(prefix))
    if cell:
        params.update({LINK_TRUE: cell[0], LINK_PRED: cell[1]})
    st.page_link(ERRORS_PAGE, label=f"Open epoch {epoch} on the Errors page", icon=":material/grid_on:",
                 query_params=params, help="The full-size matrix of this epoch, the ranked pairs and the per-class scores.")


def open_from_link() -> None:
    """On the Errors page, before its widgets: apply a link's epoch and square once, then drop them from the address.

    The values are the user's text: an epoch that is not a plain number is ignored, and the page itself
    ignores an epoch it has no file for and class names the run does not have."""
    params = st.query_params
    epoch = params.get(LINK_EPOCH)
    if epoch is None:
        return
    if epoch.isascii() and epoch.isdigit() and len(epoch) <= 6:
        st.session_state[ERRORS_SPLIT_KEY] = "val"
        st.session_state[ERRORS_EPOCH_KEY] = int(epoch)
        # Forgetting the newest epoch the page saw keeps it on `epoch` instead of jumping to a newer one.
        st.session_state.pop(ERRORS_NEWEST_SEEN_KEY, None)
    true_name, pred_name = params.get(LINK_TRUE), params.get(LINK_PRED)
    if true_name and pred_name:
        on_button(ERRORS_PREFIX, true_name, pred_name)
    for key in (LINK_EPOCH, LINK_TRUE, LINK_PRED):
        params.pop(key, None)
