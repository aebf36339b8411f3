"""Errors: where a run's model goes wrong.

A confusion matrix of the chosen run's saved predictions (final test set, or the validation set after
any epoch). Clicking a square, or one of the pair buttons beside it, shows the pictures of that
(true, predicted) pair, most confident first. Counts, pairs and scores come from core.analysis on the
predictions the engine saved, so a square's number is exactly how many pictures its click shows.
The chosen square lives in st.session_state, so it survives the live refresh of a training run.
"""
from __future__ import annotations

from functools import partial

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from core import analysis, runs
from dashboard import common
from dashboard.text import plain

CELL_KEY = "errors_cell"  # (true name, predicted name) of the chosen square
CHART_GEN_KEY = "errors_chart_gen"  # bumped when a button picks a square: the chart restarts unselected
CELL_PAGE_KEY = "errors_cell_page"
EPOCH_KEY = "errors_epoch"
NEWEST_SEEN_KEY = "errors_newest_epoch_seen"
REFRESH_S = 5  # a training run's page re-reads its files this often
PAIRS_SHOWN = 8
SPLIT_LABELS = {"test": "Final test set", "val": "Validation set, after an epoch"}


# ---------------------------------------------------------------------------------------------
# Choosing a square: the chart's click and the buttons both end here
# ---------------------------------------------------------------------------------------------

def choose_cell(true_name: str, pred_name: str) -> None:
    st.session_state[CELL_KEY] = (true_name, pred_name)
    st.session_state[CELL_PAGE_KEY] = 1


def on_button(true_name: str, pred_name: str) -> None:
    choose_cell(true_name, pred_name)
    # The chart keeps its own highlighted point; a new chart key drops it, so a later click on that
    # same square still counts as a change.
    st.session_state[CHART_GEN_KEY] = st.session_state.get(CHART_GEN_KEY, 0) + 1


def on_chart_click(chart_key: str) -> None:
    picked = st.session_state[chart_key].selection.get("cell") or []
    if picked:  # a click beside the squares clears the chart's point: keep the chosen square then
        choose_cell(picked[0]["true"], picked[0]["pred"])


def chosen_cell(classes: list[str]) -> tuple[int, int] | None:
    chosen = st.session_state.get(CELL_KEY)
    if not chosen or chosen[0] not in classes or chosen[1] not in classes:
        return None
    return classes.index(chosen[0]), classes.index(chosen[1])


# ---------------------------------------------------------------------------------------------
# What to evaluate
# ---------------------------------------------------------------------------------------------

def follow_latest(epochs: list[int]) -> None:
    """Start on the newest epoch, and keep following new ones while the slider sits on the newest."""
    current, newest_seen = st.session_state.get(EPOCH_KEY), st.session_state.get(NEWEST_SEEN_KEY)
    if current not in epochs or (current == newest_seen and epochs[-1] != newest_seen):
        st.session_state[EPOCH_KEY] = epochs[-1]
    st.session_state[NEWEST_SEEN_KEY] = epochs[-1]


def pick_predictions(summary: runs.RunSummary) -> runs.Predictions:
    """The radio (test or validation) and the epoch slider; stops with a message when nothing usable is saved."""
    epochs = runs.val_epochs(summary.path)
    test, test_problem = common.predictions(summary.path, "test")
    split = st.radio(
        "Evaluate on", list(SPLIT_LABELS), format_func=SPLIT_LABELS.get, horizontal=True, key="errors_split",
        index=0 if test is not None or test_problem or not epochs else 1,  # a damaged test file is reported
        help="The final test set is judged once, after training. The validation set is judged after every "
             "epoch, so you can see how the mistakes changed while the model learned.")
    epoch = None
    if split == "val" and len(epochs) > 1:
        follow_latest(epochs)
        epoch = st.select_slider(
            "Epoch", options=epochs, key=EPOCH_KEY,
            help="Show the validation mistakes as they were at the end of this epoch.")
    elif split == "val" and epochs:
        epoch = epochs[0]
        st.caption(f"Epoch {epoch}: the only epoch finished so far.")
    if split == "test":
        preds, problem = test, test_problem
    else:
        preds, problem = common.predictions(summary.path, split, epoch) if epoch is not None else (None, None)
    if problem:
        st.warning(plain(problem))
        st.stop()
    if preds is None:
        st.info(common.no_predictions_message(summary, split))
        st.stop()
    return preds


# ---------------------------------------------------------------------------------------------
# The matrix
# ---------------------------------------------------------------------------------------------

def matrix_frame(counts: np.ndarray, classes: list[str], normalise: bool) -> pd.DataFrame:
    shares = analysis.row_normalise(counts)
    t, p = np.indices(counts.shape)  # (C, C) each
    frame = pd.DataFrame({
        "true": np.asarray(classes, dtype=object)[t.ravel()], "pred": np.asarray(classes, dtype=object)[p.ravel()],
        "count": counts.ravel(), "share": shares.ravel(),
    })
    frame["label"] = [f"{s:.0%}" for s in frame["share"]] if normalise else frame["count"].astype(str)
    shown = frame["share"] if normalise else frame["count"]
    frame["dark"] = np.sqrt(shown / shown.max()) > 0.6 if shown.max() > 0 else False  # white text on dark squares
    return frame


def matrix_chart(counts: np.ndarray, classes: list[str], normalise: bool, chosen: tuple[int, int] | None) -> alt.Chart:
    frame = matrix_frame(counts, classes, normalise)
    x = alt.X("pred:N", sort=classes, title="Predicted class", axis=alt.Axis(labelAngle=-40, labelOverlap=False))
    y = alt.Y("true:N", sort=classes, title="True class", axis=alt.Axis(labelOverlap=False))
    tooltip = [alt.Tooltip("true:N", title="True class"), alt.Tooltip("pred:N", title="Predicted as"),
               alt.Tooltip("count:Q", title="Images"),
               alt.Tooltip("share:Q", title="Share of this true class", format=".1%")]
    cell = alt.selection_point(name="cell", fields=["true", "pred"], on="click")
    # A square-root colour scale keeps the small off-diagonal counts visible next to the large diagonal.
    rect = alt.Chart(frame).mark_rect().encode(
        x=x, y=y, tooltip=tooltip,
        color=alt.Color("share:Q" if normalise else "count:Q", legend=None,
                        scale=alt.Scale(type="sqrt", scheme="blues")),
    ).add_params(cell)
    text = alt.Chart(frame).mark_text(fontSize=12).encode(
        x=x, y=y, text="label:N", tooltip=tooltip,
        color=alt.condition("datum.dark", alt.value("white"), alt.value("#222")))
    layers = [rect, text]
    if chosen is not None:
        mark = frame[(frame["true"] == classes[chosen[0]]) & (frame["pred"] == classes[chosen[1]])]
        layers.append(alt.Chart(mark).mark_rect(fill=None, stroke="#e4572e", strokeWidth=3).encode(x=x, y=y))
    side = min(560, 44 * len(classes) + 60)
    return alt.layer(*layers).properties(height=side, width=side)


def show_matrix(counts: np.ndarray, classes: list[str], chosen: tuple[int, int] | None) -> None:
    normalise = st.toggle("Show shares instead of counts", key="errors_normalise",
                          help="Turn on to see, for each true class (row), what share of its pictures went to each "
                               "predicted class; the rows then add up to 100%.")
    chart_key = f"errors_matrix_{st.session_state.get(CHART_GEN_KEY, 0)}"
    st.altair_chart(matrix_chart(counts, classes, normalise, chosen), key=chart_key, selection_mode="cell",
                    on_select=partial(on_chart_click, chart_key))
    st.caption("Rows are the true classes, columns what the model said. Click a square to see its pictures.")


# ---------------------------------------------------------------------------------------------
# Beside the matrix: the pairs most often mixed up
# ---------------------------------------------------------------------------------------------

def show_pairs(counts: np.ndarray, classes: list[str]) -> None:
    st.subheader("Most mixed-up pairs")
    famous = analysis.famous_pairs(classes)
    if famous:
        st.caption("Well-known look-alikes: show the more common direction of each.")
        columns = st.columns(len(famous))
        for column, (a, b) in zip(columns, famous):
            pair = analysis.pair_between(counts, a, b)
            t, p = pair.worse_direction
            column.button(
                f"{plain(classes[a])} ↔ {plain(classes[b])}", key=f"errors_famous_{classes[a]}_{classes[b]}",
                on_click=on_button, args=(classes[t], classes[p]), width="stretch", wrap=True,
                help=f"A classic look-alike pair ({pair.total} mix-ups here): shows the {counts[t, p]} "
                     f"{plain(classes[t])} pictures taken for {plain(classes[p])}, the more common direction.")
    pairs = analysis.confused_pairs(counts, PAIRS_SHOWN)
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
                          disabled=n == 0, on_click=on_button, args=(classes[t], classes[p]), width="stretch",
                          wrap=True, help=f"Show the {plain(classes[t])} pictures the model called {plain(classes[p])}.")


# ---------------------------------------------------------------------------------------------
# Below: the chosen square's pictures, then per-class scores
# ---------------------------------------------------------------------------------------------

def show_cell(preds: runs.Predictions, classes: list[str], chosen: tuple[int, int] | None, images, reason) -> None:
    if chosen is None:
        st.info("Click a square of the matrix, or a pair button, to see its pictures here.")
        return
    t, p = chosen
    positions = analysis.cell_positions(preds.labels, preds.pred, preds.probs, t, p)
    title = (f"{plain(classes[t])} recognised correctly" if t == p
             else f"{plain(classes[t])} taken for {plain(classes[p])}")
    st.subheader(title)
    st.caption(f"{len(positions)} pictures, the most confident prediction first.")
    if not len(positions):
        return
    if images is None:
        st.caption(f"The pictures themselves are not available here. {plain(reason or '')}")
    page = common.page_picker(len(positions), CELL_PAGE_KEY)
    common.prediction_tiles(preds, analysis.page_of(positions, page, common.TILES_PER_PAGE), images, classes)


def show_class_scores(preds: runs.Predictions, classes: list[str]) -> None:
    st.subheader("Per-class scores")
    report = analysis.class_report(preds.labels, preds.pred, len(classes))
    table = pd.DataFrame({"Class": classes, "Images": report.support, "Accuracy": report.accuracy,
                          "Precision": report.precision, "Recall": report.recall, "F1": report.f1})
    st.dataframe(table, hide_index=True, column_config={
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

def analysis_view(run_id: str) -> None:
    """Everything below the title; re-run every few seconds while the run trains."""
    try:
        summary = runs.summarize_run(runs.run_path(common.runs_dir(), run_id))
    except runs.RunError as exc:
        st.error(plain(exc))
        st.stop()
    preds = pick_predictions(summary)
    num_classes = preds.probs.shape[1]
    images, data_classes, reason = common.run_images(summary.config, preds)
    classes = common.class_names(summary.path, num_classes, data_classes)
    if images is None:
        st.warning(f"{plain(reason)} The numbers below are still exact.")
    counts = analysis.confusion_counts(preds.labels, preds.pred, num_classes)
    right = int(np.trace(counts))
    st.caption(f"{len(preds.labels):,} pictures, {right:,} right ({right / max(1, len(preds.labels)):.1%}).")
    chosen = chosen_cell(classes)
    matrix_col, pairs_col = st.columns([3, 2], gap="large")
    with matrix_col:
        show_matrix(counts, classes, chosen)
    with pairs_col:
        show_pairs(counts, classes)
    show_cell(preds, classes, chosen, images, reason)
    show_class_scores(preds, classes)


st.title("Errors")
selected = common.selected_run()
if selected is None:
    st.info("There is no run to look at yet: start one on the Train page, then come back here.")
    st.stop()
if selected.state in runs.LIVE_STATES:  # re-read the run's files every few seconds while it trains
    st.fragment(analysis_view, run_every=REFRESH_S)(selected.run_id)
else:
    analysis_view(selected.run_id)
