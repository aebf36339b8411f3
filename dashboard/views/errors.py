"""Errors: where a run's model goes wrong.

A confusion matrix of the chosen run's saved predictions (final test set, or the validation set after
any epoch). Clicking a square, or one of the pair buttons beside it, shows the pictures of that
(true, predicted) pair, most confident first, beside the matrix: on a 1366x768 screen the first of them
is in view without scrolling. Until a square is chosen the ranked pairs fill that column; afterwards
they fold into a "Most mixed-up pairs" popover above the matrix, which closes again on a pair click. Counts, pairs and scores come from core.analysis.mistakes on the
predictions the engine saved, so a square's number is exactly how many pictures its click shows.
The chosen square lives in st.session_state, so it survives the live refresh of a training run. The
matrix and the pictures are dashboard/matrix.py, which the Train page's live view draws too.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.analysis import mistakes
from core.rundir import catalog, predictions
from dashboard import epochs as epoch_view
from dashboard import loaders, matrix, state, where_looked
from dashboard.report.download import download_button
from dashboard.text import plain
from dashboard.wording import MISSING

PREFIX = matrix.ERRORS_PREFIX  # the shared matrix's keys: errors_cell, errors_cell_page, errors_matrix_N
EPOCH_KEY = matrix.ERRORS_EPOCH_KEY
NEWEST_SEEN_KEY = matrix.ERRORS_NEWEST_SEEN_KEY
REFRESH_S = 5  # a training run's page re-reads its files this often
PAIRS_SHOWN = 8
PAIRS_TITLE = "Most mixed-up pairs"
PAIRS_MENU_KEY = "errors_pairs_menu"  # the popover holding the pairs once a square is chosen: open or closed
WHERE_LOOKED_KEY = "errors_where_looked"
SIDE_TILE_COLUMNS = 3  # pictures beside the matrix: three a row keeps each about 100 px wide at 1366 px
SPLIT_LABELS = {"test": "Final test set", "val": "Validation set, after an epoch"}


# ---------------------------------------------------------------------------------------------
# What to evaluate
# ---------------------------------------------------------------------------------------------

def follow_latest(epochs: list[int]) -> None:
    """Start on the newest epoch, and keep following new ones while the slider sits on the newest."""
    current, newest_seen = st.session_state.get(EPOCH_KEY), st.session_state.get(NEWEST_SEEN_KEY)
    if current not in epochs or (current == newest_seen and epochs[-1] != newest_seen):
        st.session_state[EPOCH_KEY] = epochs[-1]
    st.session_state[NEWEST_SEEN_KEY] = epochs[-1]


def pick_predictions(summary: catalog.RunSummary) -> predictions.Predictions:
    """The radio (test or validation) and the epoch slider; stops with a message when nothing usable is saved."""
    epochs = predictions.val_epochs(summary.path)
    test, test_problem = loaders.predictions(summary.path, "test")
    split = st.radio(
        "Evaluate on", list(SPLIT_LABELS), format_func=SPLIT_LABELS.get, horizontal=True,
        key=matrix.ERRORS_SPLIT_KEY,
        index=0 if test is not None or test_problem or not epochs else 1,  # a damaged test file is reported
        help="The final test set is judged once, after training. The validation set is judged after every "
             "epoch, so you can see how the mistakes changed while the model learned.")
    epoch = None
    if split == "val" and len(epochs) > 1:
        follow_latest(epochs)
        epoch = epoch_view.epoch_slider(epochs)  # with its play button (dashboard/epochs.py)
    elif split == "val" and epochs:
        epoch = epochs[0]
        st.caption(f"Epoch {epoch}: the only epoch finished so far.")
    if split == "test":
        preds, problem = test, test_problem
    else:
        preds, problem = loaders.predictions(summary.path, split, epoch) if epoch is not None else (None, None)
    return loaders.predictions_or_stop(summary, split, preds, problem)


# ---------------------------------------------------------------------------------------------
# Beside the matrix: the pairs most often mixed up
# ---------------------------------------------------------------------------------------------

def choose_pair(true_name: str, pred_name: str) -> None:
    """A pair button's click: choose its square and close the pairs popover, which would cover the pictures."""
    matrix.on_button(PREFIX, true_name, pred_name)
    st.session_state[PAIRS_MENU_KEY] = False


def show_pairs_menu(counts: np.ndarray, classes: list[str]) -> None:
    """The pairs folded into a popover, so the chosen square's pictures can start at the top of their column."""
    with st.popover(PAIRS_TITLE, icon=":material/compare_arrows:", key=PAIRS_MENU_KEY, on_change="rerun",
                    help="The class pairs the model mixes up most; click a direction to see its pictures beside the matrix."):
        show_pairs(counts, classes)


def show_pairs(counts: np.ndarray, classes: list[str]) -> None:
    """The look-alike buttons and the ranked pairs, a button for each direction (titled by the caller)."""
    famous = mistakes.famous_pairs(classes)
    if famous:
        st.caption("Well-known look-alikes: show the more common direction of each.")
        columns = st.columns(len(famous))
        for column, (a, b) in zip(columns, famous):
            pair = mistakes.pair_between(counts, a, b)
            t, p = pair.worse_direction
            column.button(
                f"{plain(classes[a])} ↔ {plain(classes[b])}", key=f"errors_famous_{classes[a]}_{classes[b]}",
                on_click=choose_pair, args=(classes[t], classes[p]), width="stretch", wrap=True,
                help=f"A classic look-alike pair ({pair.total} mix-ups here): shows the {counts[t, p]} "
                     f"{plain(classes[t])} pictures taken for {plain(classes[p])}, the more common direction.")
    pairs = mistakes.confused_pairs(counts, PAIRS_SHOWN)
    if not pairs:
        st.success("No two classes are mixed up: every picture was classified correctly.")
        return
    st.caption("Mistakes in both directions added up; click a direction to see its pictures.")
    for rank, pair in enumerate(pairs, 1):
        st.markdown(f"{rank}. **{plain(classes[pair.a])} ↔ {plain(classes[pair.b])}**: {pair.total}")
        forward_col, back_col = st.columns(2)
        directions = ((forward_col, (pair.a, pair.b), pair.a_as_b), (back_col, (pair.b, pair.a), pair.b_as_a))
        for column, (t, p), n in directions:
            column.button(f"{plain(classes[t])} → {plain(classes[p])}: {n}", key=f"errors_pair_{t}_{p}",
                          disabled=n == 0, on_click=choose_pair, args=(classes[t], classes[p]),
                          width="stretch", wrap=True, help=f"Show the {plain(classes[t])} pictures the model called {plain(classes[p])}.")


# ---------------------------------------------------------------------------------------------
# Beside the matrix once a square is chosen: its title, then its pictures
# ---------------------------------------------------------------------------------------------

def show_beside_matrix(summary: catalog.RunSummary, preds: predictions.Predictions, counts: np.ndarray,
                       classes: list[str], chosen: tuple[int, int] | None, images, reason: str | None,
                       looked: bool = False) -> None:
    """Before a choice, how to make one and the ranked pairs; after it, the chosen square's pictures."""
    if chosen is None:
        st.info(matrix.CHOOSE_HINT)
        st.subheader(PAIRS_TITLE)
        show_pairs(counts, classes)
        return
    show_chosen_square(summary, preds, classes, chosen, images, reason, looked)


def show_chosen_square(summary: catalog.RunSummary, preds: predictions.Predictions, classes: list[str],
                       chosen: tuple[int, int], images, reason: str | None, looked: bool) -> None:
    positions = matrix.cell_heading(preds, classes, chosen)
    # Under the chosen square's title: more about this pair goes here. Keep it short (a line or a
    # small chart): the first picture must stay in view on a 1366x768 screen.
    looks = where_looked.looks_for(summary, preds, images) if looked and len(positions) else None
    matrix.cell_pictures(PREFIX, preds, classes, positions, images, reason, columns=SIDE_TILE_COLUMNS, looks=looks)


# ---------------------------------------------------------------------------------------------
# Below: per-class scores
# ---------------------------------------------------------------------------------------------

def show_class_scores(preds: predictions.Predictions, classes: list[str]) -> None:
    st.subheader("Per-class scores")
    scores = mistakes.class_report(preds.labels, preds.pred, len(classes))
    table = pd.DataFrame({"Class": classes, "Images": scores.support, "Accuracy": scores.accuracy,
                          "Precision": scores.precision, "Recall": scores.recall, "F1": scores.f1})
    # A class the model never predicts has no precision (nothing to divide by): shown as MISSING.
    st.dataframe(table, hide_index=True, placeholder=MISSING, column_config={
        "Images": st.column_config.NumberColumn(help="Pictures of this class among those evaluated."),
        "Accuracy": st.column_config.ProgressColumn(
            help="Share of this class's pictures the model got right.", format="percent", min_value=0.0,
            max_value=1.0),
        "Precision": st.column_config.NumberColumn(
            help="When the model says this class, how often it is right.", format="percent"),
        "Recall": st.column_config.NumberColumn(
            help="Of this class's pictures, the share the model found (the same as its accuracy).", format="percent"),
        "F1": st.column_config.NumberColumn(
            help="One score balancing precision and recall (their harmonic mean).", format="percent"),
    })


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------

def show_matrix_controls(counts: np.ndarray, classes: list[str], chosen: tuple[int, int] | None,
                         preds: predictions.Predictions) -> tuple[bool, bool]:
    """The row above the matrix: the shares toggle, and once a square is chosen "Show where it looked" and the
    pairs' menu at its right end (over the pictures, clear of the chart's own toolbar); in this row they take
    no height from the pictures. Returns whether to show shares, and where the model looked."""
    with st.container(horizontal=True, vertical_alignment="center", horizontal_alignment="distribute"):
        normalise = st.toggle("Show shares instead of counts", key="errors_normalise",
                              help="Turn on to see, for each true class (row), what share of its pictures went to "
                                   "each predicted class; the rows then add up to 100%.")
        looked = chosen is not None and where_looked.toggle(WHERE_LOOKED_KEY, preds)
        if chosen is not None:
            show_pairs_menu(counts, classes)
    return normalise, looked


def analysis_view(summary: catalog.RunSummary) -> None:
    """Everything below the title; re-run every few seconds while the run trains."""
    preds = pick_predictions(summary)
    num_classes = preds.probs.shape[1]
    images, data_classes, reason = loaders.run_images(summary.config, preds)
    classes = loaders.class_names(summary, num_classes, data_classes)
    if images is None:
        st.warning(f"{plain(reason)} The numbers below are still exact.")
    counts = mistakes.confusion_counts(preds.labels, preds.pred, num_classes)
    judged = mistakes.tally(preds.labels, preds.pred)
    st.caption(f"{judged.total:,} pictures, {judged.right:,} right ({judged.accuracy:.1%}).")
    chosen = matrix.chosen_cell(PREFIX, classes)
    normalise, looked = show_matrix_controls(counts, classes, chosen, preds)
    matrix_col, side_col = st.columns([3, 2], gap="large")
    with matrix_col:
        matrix.show_matrix(PREFIX, counts, classes, chosen, normalise=normalise)
        if preds.split == "val":
            epoch_view.pair_history(summary.path, classes, chosen)
    with side_col:
        show_beside_matrix(summary, preds, counts, classes, chosen, images, reason, looked)
    show_class_scores(preds, classes)


st.title("Errors")
matrix.open_from_link()  # the live view's "Open epoch N on the Errors page"
if (selected := state.selected_run()) is not None:
    download_button(selected)  # built only when clicked
state.show_selected_run(analysis_view, REFRESH_S)  # re-read every few seconds while the run trains
