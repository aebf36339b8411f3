"""Compare: two runs' final test results side by side, picture by picture.

Run A is the sidebar's run; run B is picked here among the other runs with saved test predictions.
The page shows both overall accuracies, the per-class accuracies and their change, the difference
matrix (B's confusion counts minus A's) and, for a clicked square or class row, the pictures that
*flipped*: right in A and wrong in B, and the other way round. Every number comes from core.analysis.compare on
the two runs' saved test predictions, matched by each picture's place in the test set; runs tested on
different pictures are refused in one sentence. The chosen square is stored through dashboard/matrix.py
(prefix "compare"), as class names, so it survives picking another run B.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import streamlit as st

from core.analysis import compare, mistakes
from core.rundir import catalog, layout, predictions
from core.rundir.state import RunState
from dashboard import charts, loaders, matrix, state, tiles
from dashboard.run_listing import run_labels, unique_labels
from dashboard.text import plain
from dashboard.wording import MISSING

PREFIX = "compare"  # matrix.py's keys: compare_cell (the chosen square), compare_matrix_N (the chart)
B_KEY = "compare_b"
TABLE_KEY = "compare_classes"
FLIPS_CAPTION = (
    "A square's flipped pictures are pictures of its true class that one run put in its column and the other "
    "got right; a square on the diagonal, or a class row of the table, shows all of that class's flips.")


# ---------------------------------------------------------------------------------------------
# The two runs
# ---------------------------------------------------------------------------------------------

def saved_test(summary: catalog.RunSummary, side: str) -> predictions.Predictions:
    """A run's final test predictions; stops the page with one sentence when they are missing or damaged."""
    preds, problem = loaders.predictions(summary.path, "test")
    return loaders.predictions_or_stop(summary, "test", preds, problem, prefix=f"Run {side}: ")


def candidates_for_b(a: catalog.RunSummary, summaries: list[catalog.RunSummary]) -> list[catalog.RunSummary]:
    """The other runs with a saved final test, those trained on A's data first (newest first within each)."""
    others = [s for s in summaries if s.run_id != a.run_id and layout.test_predictions(s.path).is_file()]
    return sorted(others, key=lambda s: s.config.get("data") != a.config.get("data"))  # stable: keeps newest first


def pick_run_b(a: catalog.RunSummary, summaries: list[catalog.RunSummary], labels: dict[str, str]) -> catalog.RunSummary:
    """The run B selectbox; stops with one sentence when no other run has test results."""
    others = candidates_for_b(a, summaries)
    if not others:
        st.info("There is no other run with final test results to compare run A with: train another run on the "
                "same data, then come back here.")
        st.stop()
    ids = [s.run_id for s in others]
    if st.session_state.get(B_KEY) not in ids:
        st.session_state[B_KEY] = ids[0]
    state.resend_if_relabelled(B_KEY, labels[st.session_state[B_KEY]])
    chosen = st.selectbox("Run B", ids, key=B_KEY, format_func=labels.get,
                          help="The run to set against run A (the sidebar's run). Only runs with final test "
                               "results are listed, those trained on the same data as run A first.")
    return next(s for s in others if s.run_id == chosen)


def class_names(a: catalog.RunSummary, b: catalog.RunSummary, num_classes: int, data_classes) -> list[str]:
    """Run A's class names, or run B's when only B's are known (older runs may not record them)."""
    names = loaders.class_names(a, num_classes, data_classes)
    if names == [f"class {k}" for k in range(num_classes)]:  # loaders' numbered last resort
        return loaders.class_names(b, num_classes, data_classes)
    return names


def test_images(a: catalog.RunSummary, b: catalog.RunSummary, preds_a, preds_b):
    """The test pictures from A's data or else B's: (images, data class names, why not shown)."""
    images, data_classes, reason = loaders.run_images(a.config, preds_a)
    if images is None:
        images_b, classes_b, _ = loaders.run_images(b.config, preds_b)
        if images_b is not None:
            return images_b, classes_b, None
    return images, data_classes, reason


# ---------------------------------------------------------------------------------------------
# Accuracies
# ---------------------------------------------------------------------------------------------

def show_accuracies(x: compare.Aligned, label_a: str, label_b: str) -> None:
    acc_a, acc_b = compare.accuracies(x)
    change = compare.accuracy_change(x)
    col_a, col_b = st.columns(2)
    col_a.metric(f"Run A: {plain(label_a)}", f"{acc_a:.1%}", help="Share of the test pictures run A got right.")
    col_b.metric(f"Run B: {plain(label_b)}", f"{acc_b:.1%}", delta=0 if change == "the same" else change,
                 delta_description="the same as run A" if change == "the same" else None,
                 help="Share of the test pictures run B got right; the change is against run A.")
    o = compare.outcome_counts(x)
    st.caption(f"Of the {len(x.labels):,} test pictures, {o.both:,} are right in both runs, {o.only_a:,} only in A, "
               f"{o.only_b:,} only in B and {o.neither:,} in neither.")


def class_table(x: compare.Aligned, classes: list[str]) -> pd.DataFrame:
    acc_a, acc_b = compare.class_accuracies(x)
    lost, gained = compare.flip_counts(x)
    return pd.DataFrame({
        "Class": classes, "Images": np.bincount(x.labels, minlength=x.num_classes),
        # In percent, so one decimal always shows ("percent" formats 0.88 as 88% beside 88.7%).
        "Run A": 100 * acc_a, "Run B": 100 * acc_b, "Change": 100 * (acc_b - acc_a),
        "Only A right": np.diag(lost), "Only B right": np.diag(gained)})


def _selected_rows() -> list[int]:
    """The table's selected rows; its state is the widget's, or the plain dict this page last set."""
    current = st.session_state.get(TABLE_KEY)
    return list(current["selection"]["rows"]) if current is not None else []


def _on_class_row(classes: list[str]) -> None:
    rows = _selected_rows()
    if rows:
        matrix.on_button(PREFIX, classes[rows[0]], classes[rows[0]])  # a class is its diagonal square


def show_class_table(x: compare.Aligned, classes: list[str], chosen: tuple[int, int] | None) -> None:
    st.subheader("Per class")
    # The highlighted row follows the chosen square: its class when it is on the diagonal, else none.
    wanted = [chosen[0]] if chosen is not None and chosen[0] == chosen[1] else []
    if TABLE_KEY in st.session_state and _selected_rows() != wanted:
        st.session_state[TABLE_KEY] = {"selection": {"rows": wanted, "columns": [], "cells": []}}
    st.dataframe(
        class_table(x, classes), key=TABLE_KEY, hide_index=True, width="stretch", placeholder=MISSING,
        on_select=partial(_on_class_row, classes), selection_mode="single-row",
        column_config={
            "Images": st.column_config.NumberColumn(help="Test pictures of this class."),
            "Run A": st.column_config.NumberColumn(help="Share of this class's pictures run A got right.",
                                                   format="%.1f%%"),
            "Run B": st.column_config.NumberColumn(help="Share of this class's pictures run B got right.",
                                                   format="%.1f%%"),
            "Change": st.column_config.NumberColumn(help="Run B's accuracy minus run A's, in percentage points.",
                                                    format="%+.1f pts"),
            "Only A right": st.column_config.NumberColumn(help="Pictures of this class right in A, wrong in B."),
            "Only B right": st.column_config.NumberColumn(help="Pictures of this class wrong in A, right in B."),
        })
    st.caption("Pick a row to see the class's flipped pictures below.")


# ---------------------------------------------------------------------------------------------
# The difference matrix
# ---------------------------------------------------------------------------------------------

def show_difference_matrix(x: compare.Aligned, classes: list[str], chosen: tuple[int, int] | None) -> None:
    st.subheader("Difference matrix")
    matrix.draw_clickable(PREFIX, charts.difference_chart(x, classes, chosen))
    st.caption("Each square is run B's count minus run A's (rows: true class, columns: the answer). Blue where "
               "B does better (more right on the diagonal, fewer of that mistake off it), red where it does "
               "worse. Click a square to see the pictures that flipped there.")


# ---------------------------------------------------------------------------------------------
# The flipped pictures of the chosen square
# ---------------------------------------------------------------------------------------------

def _captions(x: compare.Aligned, positions: np.ndarray, classes: list[str]) -> list[str]:
    return [tiles.pair_caption(classes[x.labels[k]], {"A": (classes[x.pred_a[k]], float(x.conf_a[k])),
                                                      "B": (classes[x.pred_b[k]], float(x.conf_b[k]))})
            for k in positions]


def _flip_group(x: compare.Aligned, positions: np.ndarray, classes: list[str], images, page_key: str) -> None:
    if not len(positions):
        st.caption("None.")
        return
    page = tiles.page_picker(len(positions), page_key)
    shown = mistakes.page_of(positions, page, tiles.TILES_PER_PAGE)
    tiles.captioned_tiles(images, x.index[shown], _captions(x, shown, classes))


def show_flips(x: compare.Aligned, classes: list[str], chosen: tuple[int, int] | None, images,
               reason: str | None) -> None:
    if chosen is None:
        st.info("Click a square of the difference matrix, or pick a class in the table, to see the pictures "
                "that flipped there.")
        return
    t, p = chosen
    f = compare.flips(x, t, p)
    st.subheader(f"{plain(classes[t])}: flipped pictures" if t == p
                 else f"{plain(classes[t])} taken for {plain(classes[p])}: flipped pictures")
    st.caption(f"{FLIPS_CAPTION} The more confident wrong answer comes first; each caption gives both runs' "
               "answers and how sure each was.")
    if images is None:
        st.caption(f"The pictures themselves are not available here. {plain(reason or '')}")
    lost_tab, gained_tab = st.tabs([f"Right in A, wrong in B: {len(f.right_in_a)}",
                                    f"Wrong in A, right in B: {len(f.right_in_b)}"])
    # Page keys name the square, so another square starts on its first page.
    with lost_tab:
        _flip_group(x, f.right_in_a, classes, images, f"{PREFIX}_lost_page_{t}_{p}")
    with gained_tab:
        _flip_group(x, f.right_in_b, classes, images, f"{PREFIX}_gained_page_{t}_{p}")


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------

def compare_view(a: catalog.RunSummary) -> None:
    summaries = [s for s in state.run_summaries() if s.state != RunState.DAMAGED]
    labels = run_labels(summaries)
    preds_a = saved_test(a, "A")
    b = pick_run_b(a, summaries, labels)
    preds_b = saved_test(b, "B")
    refusal = compare.test_set_refusal(preds_a, preds_b)
    if refusal:
        st.warning(refusal)
        st.stop()
    x = compare.align(preds_a, preds_b)
    images, data_classes, reason = test_images(a, b, preds_a, preds_b)
    classes = class_names(a, b, x.num_classes, data_classes)
    if images is None:
        st.warning(f"{plain(reason)} The numbers below are still exact.")
    names = unique_labels(summaries)
    show_accuracies(x, names[a.run_id], names[b.run_id])
    chosen = matrix.chosen_cell(PREFIX, classes)
    matrix_col, table_col = st.columns(2, gap="large")
    with matrix_col:
        show_difference_matrix(x, classes, chosen)
    with table_col:
        show_class_table(x, classes, chosen)
    show_flips(x, classes, chosen, images, reason)


st.title("Compare")
st.caption("Run A is the run chosen in the sidebar; pick run B below to set their final test results side by side.")
selected = state.selected_run()
if selected is None:
    st.info("There is no run to compare yet: train two runs on the same data on the Train page, then come back here.")
    st.stop()
compare_view(selected)
