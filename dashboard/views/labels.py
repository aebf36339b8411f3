"""Possibly mislabelled: the chosen run's test pictures whose given label its model doubts most.

Confident learning (core.analysis.label_issues) over the saved test predictions: a picture is listed when the
model gives its label less probability than it usually gives that class, while being at least as sure
as usual of another class. Ranked most suspicious first, filtered by given class, a page of pictures at a
time with the given and the suggested label. Computed on demand from the saved test predictions (cached
per version of the file), so runs made before this page work unchanged and nothing is written.

The training pictures need out-of-sample probabilities: the K-fold section starts K quick runs through
the job manager (core.analysis.kfold), shows their progress, can stop them, and once all have finished combines
their held-out answers into the run's out-of-fold predictions, which this page then ranks too.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.analysis import kfold, label_issues
from core.analysis.label_issues import LabelIssues
from core.rundir import catalog, layout
from core.rundir.predictions import Predictions
from core.rundir.state import LIVE_STATES, RunState
from dashboard import loaders, state, tiles
from dashboard.text import plain
from dashboard.wording import format_duration, plural

ANY = "Any"
PAGE_KEY = "labels_page"
PICKER_PX = 180  # the folds box: room for its label and +/- buttons
CLASS_KEY = "labels_given"
RANKING_KEY = "labels_ranking"
SPLIT_KEY = "labels_split"
FOLDS_KEY = "labels_folds"
REFRESH_S = 2  # the K-fold progress is re-read this often while its runs train
SPLITS = {"test": "Test pictures", "train": "Training pictures (out-of-fold)"}
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


def show_summary(issues: LabelIssues, n_pictures: int, split: str) -> None:
    found = len(issues.positions)
    which = "test pictures" if split == "test" else "training pictures"
    st.metric("Possibly mislabelled", f"{found:,} of {n_pictures:,} {which}",
              help="Found by confident learning (Northcutt et al., 2021) on this run's "
                   + ("test predictions." if split == "test" else "out-of-fold training predictions."))


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


def split_predictions(summary: catalog.RunSummary, split: str) -> Predictions | None:
    """The chosen split's predictions, or None after a sentence saying why there are none."""
    if split == "train":
        preds, problem = loaders.oof_predictions(summary.path)
        if preds is None and not problem:
            st.info("The model learned from the training pictures, so its own answers on them cannot judge their "
                    "labels. Out-of-fold answers can: start the K-fold runs below, and the training pictures are "
                    "listed here once they have finished.")
    else:
        preds, problem = loaders.predictions(summary.path, "test")
        if preds is None and not problem:
            st.info(loaders.no_predictions_message(summary, "test"))
    if problem:
        st.warning(plain(problem))
    return preds


def labels_view(summary: catalog.RunSummary, split: str) -> None:
    preds = split_predictions(summary, split)
    if preds is None:
        return
    images, data_classes, reason = loaders.run_images(summary.config, preds)
    classes = loaders.class_names(summary, preds.probs.shape[1], data_classes)
    if images is None:
        st.warning(f"{plain(reason)} The tiles below show their captions only.")
    given, ranking = controls(classes)
    issues = loaders.suspected_labels(summary.path, ranking, split)
    if issues is None:  # the file changed between the two reads (a run finishing); the next rerun shows it
        return
    show_summary(issues, len(preds.labels), split)
    rows = label_issues.filter_given(issues, given)
    if not len(issues.positions):
        st.success("The model agrees with the labels: no picture stands out as possibly mislabelled.")
        return
    if not len(rows):
        st.info(f"No picture given the label {plain(classes[given])} looks mislabelled; pick another class.")
        return
    which = "" if given is None else f" given the label {plain(classes[given])}"
    st.caption(f"{len(rows):,} pictures{which}, the most suspicious first.")
    show_gallery(issues, rows, preds, images, classes)


# ---------------------------------------------------------------------------------------------
# K-fold: out-of-fold answers on the training pictures
# ---------------------------------------------------------------------------------------------

def estimate_text(summary: catalog.RunSummary, folds: int) -> str:
    """What starting the K-fold runs means, and how long it should take (from this run's seconds per epoch)."""
    epochs = summary.config.get("epochs")
    plan = (f"This trains {folds} quick runs with this run's settings, one after the other, each on "
            f"{folds - 1}/{folds} of the training pictures for {plural(int(epochs), 'epoch')}, and asks "
            f"each about the pictures it did not see.") if isinstance(epochs, int) else \
        f"This trains {folds} quick runs with this run's settings, one after the other."
    seconds = kfold.estimate_seconds(summary, folds)
    if seconds is None:
        return f"{plan} How long it takes cannot be told: this run kept no training time to go by."
    per_epoch = format_duration(kfold.seconds_per_epoch(summary))
    return (f"{plan} This run took {per_epoch} an epoch, so expect about {format_duration(seconds)} "
            "in all (on the same device).")


def start_section(summary: catalog.RunSummary) -> None:
    folds = int(st.number_input("Folds (K)", min_value=2, max_value=kfold.MAX_FOLDS, value=kfold.DEFAULT_FOLDS,
                                step=1, key=FOLDS_KEY, width=PICKER_PX,
                                help="How many parts the training pictures are split into; one run per part."))
    st.caption(estimate_text(summary, folds))
    if summary.state in LIVE_STATES:
        st.info("Wait until this run has finished: the K-fold runs copy its settings and time.")
        return
    if st.button("Start the K-fold runs", icon=":material/play_arrow:", key="labels_kfold_start"):
        try:
            state.job_manager().start_kfold(summary, folds)
        except ValueError as exc:  # a device this machine lacks, or settings no longer valid
            st.error(plain(exc))
            return
        st.rerun()


def job_section(summary: catalog.RunSummary, job: kfold.FoldJob) -> None:
    """Progress of a started K-fold job, a stop button, and the combining once every run has finished."""
    folds = kfold.progress(job, state.runs_dir())
    status = kfold.job_state(folds)
    st.progress(kfold.overall_progress(folds), text=f"K-fold runs: {status_text(folds)}")
    if status == RunState.RUNNING:
        if st.button("Stop the K-fold runs", icon=":material/stop:", key="labels_kfold_stop"):
            state.job_manager().stop_kfold(job)
            st.rerun()
    elif status == RunState.COMPLETED and not layout.out_of_fold(summary.path).exists():
        try:
            kfold.combine_folds(summary.path, [s.path for s in folds])
        except ValueError as exc:  # PredictionsError: the folds do not fit together
            st.error(plain(exc))
            return
        st.rerun(scope="app")
    elif status == "ended":
        st.warning("Not every K-fold run finished (stopped, failed or deleted), so there are no out-of-fold "
                   "answers yet; start them again below.")
        start_section(summary)


def status_text(folds: list[catalog.RunSummary | None]) -> str:
    done = sum(s is not None and s.state == RunState.COMPLETED for s in folds)
    training = [k + 1 for k, s in enumerate(folds) if s is not None and s.state == RunState.RUNNING]
    now = f", training fold {training[0]}" if training else ""
    return f"{done} of {len(folds)} finished{now}."


def kfold_section(summary: catalog.RunSummary) -> None:
    st.subheader("Out-of-fold answers on the training pictures")
    job = kfold.read_job(summary.path)
    if job is None:
        start_section(summary)
        return
    if layout.out_of_fold(summary.path).exists():
        st.caption(f"Made by {job.folds} K-fold runs. Choose 'Training pictures' above to see their list.")
        return
    live = any(s is not None and s.state in LIVE_STATES for s in kfold.progress(job, state.runs_dir()))
    if live:
        st.fragment(job_section, run_every=REFRESH_S)(summary, job)
    else:
        job_section(summary, job)


st.title("Possibly mislabelled")
st.caption(EXPLANATION)
selected = state.selected_run_or_stop()
chosen_split = st.segmented_control("Pictures", list(SPLITS), format_func=SPLITS.get, default="test",
                                    key=SPLIT_KEY, on_change=reset_page, required=True,
                                    help="Test pictures: judged by this run's model. Training pictures: judged by "
                                         "K-fold runs that did not learn them.")
labels_view(selected, chosen_split or "test")
kfold_section(selected)
