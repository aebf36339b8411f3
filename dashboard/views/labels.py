"""Possibly mislabelled: the chosen run's test pictures whose given label its model doubts most.

Confident learning (core.label_issues) over the saved test predictions: a picture is listed when the
model gives its label less probability than it usually gives that class, while being at least as sure
as usual of another class. Ranked most suspicious first, filtered by given class, a page of pictures at a
time with the given and the suggested label. Computed on demand from predictions/test.npz (cached per
version of the file), so runs made before this page work unchanged and nothing is written.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core import label_issues, runs
from core.label_issues import LabelIssues
from core.predictions import Predictions
from dashboard import loaders, state, tiles
from dashboard.text import plain

ANY = "Any"
PAGE_KEY = "labels_page"
CLASS_KEY = "labels_given"
RANKING_KEY = "labels_ranking"
RANKING_HELP = ("Self-confidence: the pictures whose given label the model found least likely come first. "
                "Normalized margin: those where another class beat the given label by the widest gap come first.")
EXPLANATION = (
    "Datasets contain mistakes: published work found 54 of CIFAR-10's 10,000 test labels to be wrong. "
    "These are the test pictures where the model found the given label much less likely than it usually finds "
    "that class, while being as sure as it usually is of another one (the *suggested* label). The model can be "
    "the one that is wrong: look at each picture and decide. The list is a place to start, not a verdict.")


def reset_page() -> None:
    st.session_state[PAGE_KEY] = 1


def tile_caption(given: str, suggested: str, sure: float) -> str:
    """A suspect picture's caption (Markdown): given label, suggested label, the model's probability of it."""
    return f"Given: {plain(given)} · Suggested: {plain(suggested)} · {sure:.0%} sure"


def controls(classes: list[str]) -> tuple[int | None, str]:
    """The filter row: the given class (None: any) and the ranking."""
    class_col, ranking_col = st.columns([1, 2])
    given = class_col.selectbox("Given class", [ANY, *classes], key=CLASS_KEY, on_change=reset_page,
                                help="Show only pictures that were labelled with this class.")
    ranking = ranking_col.radio("Order", label_issues.RANKINGS, format_func=label_issues.RANKING_NAMES.get,
                                horizontal=True, key=RANKING_KEY, on_change=reset_page, help=RANKING_HELP)
    return (None if given == ANY else classes.index(given)), ranking


def issues_table(issues: LabelIssues, rows: np.ndarray, preds: Predictions, classes: list[str]) -> pd.DataFrame:
    """The suspects `rows` (indices into `issues`) in numbers: rank, picture, labels, probabilities, score."""
    return pd.DataFrame({
        "Rank": rows + 1,
        "Picture": preds.index[issues.positions[rows]],
        "Given": [classes[k] for k in issues.given[rows]],
        "Suggested": [classes[k] for k in issues.suggested[rows]],
        "How sure": issues.suggested_prob[rows],
        "Given label's probability": preds.probs[issues.positions[rows], issues.given[rows]],
        "Score": issues.scores[rows],
    })


def show_summary(issues: LabelIssues, n_pictures: int) -> None:
    found = len(issues.positions)
    st.metric("Possibly mislabelled", f"{found:,} of {n_pictures:,} test pictures",
              help="Found by confident learning (Northcutt et al., 2021) on this run's test predictions.")


def show_gallery(issues: LabelIssues, rows: np.ndarray, preds: Predictions, images, classes: list[str]) -> None:
    """A page of the chosen suspects as pictures, then the same page as a table."""
    page = tiles.page_picker(len(rows), PAGE_KEY)
    on_page = rows[(page - 1) * tiles.TILES_PER_PAGE: page * tiles.TILES_PER_PAGE]
    captions = [tile_caption(classes[issues.given[r]], classes[issues.suggested[r]], float(issues.suggested_prob[r]))
                for r in on_page]
    with st.container(key="labels_tiles"):  # keyed: tests find the grid and the table
        tiles.captioned_tiles(images, preds.index[issues.positions[on_page]], captions)
    with st.container(key="labels_table"):
        st.dataframe(issues_table(issues, on_page, preds, classes), hide_index=True, column_config={
                     "How sure": st.column_config.NumberColumn(format="percent"),
                     "Given label's probability": st.column_config.NumberColumn(format="percent"),
                     "Score": st.column_config.NumberColumn(
                         format="%.3f", help="Low means the given label looks wrong (0 to 1).")})


def labels_view(summary: runs.RunSummary) -> None:
    preds, problem = loaders.predictions(summary.path, "test")
    if problem:
        st.warning(plain(problem))
        st.stop()
    if preds is None:
        st.info(loaders.no_predictions_message(summary, "test"))
        st.stop()
    images, data_classes, reason = loaders.run_images(summary.config, preds)
    classes = loaders.class_names(summary, preds.probs.shape[1], data_classes)
    if images is None:
        st.warning(f"{plain(reason)} The tiles below show their captions only.")
    given, ranking = controls(classes)
    issues = loaders.suspected_labels(summary.path, ranking)
    show_summary(issues, len(preds.labels))
    rows = label_issues.filter_given(issues, given)
    if not len(issues.positions):
        st.success("The model agrees with the labels: no test picture stands out as possibly mislabelled.")
        return
    if not len(rows):
        st.info(f"No picture given the label {plain(classes[given])} looks mislabelled; pick another class.")
        return
    which = "" if given is None else f" given the label {plain(classes[given])}"
    st.caption(f"{len(rows):,} pictures{which}, the most suspicious first.")
    show_gallery(issues, rows, preds, images, classes)


st.title("Possibly mislabelled")
st.caption(EXPLANATION)
selected = state.selected_run()
if selected is None:
    st.info("There is no run to look at yet: start one on the Train page, then come back here.")
    st.stop()
labels_view(selected)
