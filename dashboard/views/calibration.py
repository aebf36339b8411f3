"""Calibration: how sure the chosen run's model is against how often it is right.

From the saved predictions of the final test set (or of the validation set after any epoch), read
through loaders.predictions: a reliability diagram (pictures binned by the probability of the class
the model picked; each bin's share right against the diagonal of perfect calibration, with its
number of pictures below), the expected calibration error (ECE), one plain sentence, and a per-class
table over the pictures *predicted* as each class. All numbers are core.analysis.calibration's; nothing is
written to the run, so runs made before this page exist show it too. A training run's page re-reads
its files every few seconds.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.analysis import calibration
from core.rundir import catalog, predictions
from dashboard import charts, loaders, state
from dashboard.wording import MISSING

REFRESH_S = 5  # a training run's page re-reads its files this often
CHART_WIDTH = 640  # pixels: the diagram and its counts, inside the main column of a 1366 px screen
SPLIT_KEY = "calib_split"
EPOCH_KEY = "calib_epoch"
SPLIT_LABELS = {"test": "Final test set", "val": "Validation set, after an epoch"}
ECE_HELP = ("Expected calibration error: the gap between how sure the model was and how often it was right, "
            "averaged over the confidence bins, each weighted by its pictures. 0% is perfect.")


# ---------------------------------------------------------------------------------------------
# What to look at
# ---------------------------------------------------------------------------------------------

def pick_epoch(epochs: list[int]) -> int | None:
    """The validation epoch: a slider over the saved epochs (the newest first), or the only one."""
    if not epochs:
        return None
    if len(epochs) == 1:
        st.caption(f"Epoch {epochs[0]}: the only epoch finished so far.")
        return epochs[0]
    if st.session_state.get(EPOCH_KEY) not in epochs:
        st.session_state[EPOCH_KEY] = epochs[-1]  # also when the chosen epoch's file went away
    return st.select_slider("After epoch", epochs, key=EPOCH_KEY,
                            help="The validation set is judged after every epoch: see how the model's "
                                 "confidence settled while it learned.")


def pick_predictions(summary: catalog.RunSummary) -> tuple[predictions.Predictions, str]:
    """The radio (test or validation) and the epoch; stops with one sentence when nothing usable is saved."""
    epochs = predictions.val_epochs(summary.path)
    test, test_problem = loaders.predictions(summary.path, "test")
    split = st.radio("Evaluate on", list(SPLIT_LABELS), format_func=SPLIT_LABELS.get, horizontal=True,
                     key=SPLIT_KEY, index=0 if test is not None or test_problem or not epochs else 1,
                     help="The final test set is judged once, after training; the validation set after every "
                          "epoch.")
    if split == "test":
        preds, problem = test, test_problem
    else:
        epoch = pick_epoch(epochs)
        preds, problem = loaders.predictions(summary.path, "val", epoch) if epoch is not None else (None, None)
    return loaders.predictions_or_stop(summary, split, preds, problem), split


# ---------------------------------------------------------------------------------------------
# What is shown
# ---------------------------------------------------------------------------------------------

def show_overall(rel: calibration.Reliability, split: str) -> None:
    columns = st.columns(4)
    columns[0].metric("Calibration error (ECE)", f"{rel.ece:.1%}", help=ECE_HELP)
    columns[1].metric("Mean confidence", f"{rel.mean_confidence:.1%}",
                      help="The average probability the model gave the class it picked.")
    columns[2].metric("Right", f"{rel.overall_accuracy:.1%}", help="The share of pictures it got right.")
    columns[3].metric("Pictures", f"{rel.total:,}")
    st.info(calibration.plain_sentence(rel, split), icon=":material/lightbulb:")


def show_diagram(rel: calibration.Reliability) -> None:
    st.subheader("Reliability diagram")
    st.caption(f"Pictures grouped by how sure the model was of its answer ({calibration.N_BINS} bins of "
               f"{1 / calibration.N_BINS:.0%}). Each bar is how often it was right in that group; the red dot "
               "sits at the group's mean confidence. On the dashed diagonal the model is exactly as right as it "
               "is sure; bars below it are over-confident, bars above under-confident. Below: how many "
               "pictures each group holds.")
    # A fixed width: Streamlit stretches each part of a two-part chart to the column and the axes then overflow it.
    st.altair_chart(charts.reliability_chart(rel, width=CHART_WIDTH), key="calib_chart", width="content")


def class_table(rows: list[calibration.ClassCalibration], classes: list[str]) -> pd.DataFrame:
    """One row a class; a class the model never predicted has no numbers (shown as MISSING)."""
    return pd.DataFrame({
        "Class": classes, "Predicted as this class": [r.predicted for r in rows],
        "Mean confidence": [r.mean_confidence for r in rows], "Right": [r.accuracy for r in rows],
        "ECE": [r.ece for r in rows]})


def show_classes(preds: predictions.Predictions, classes: list[str]) -> None:
    st.subheader("Per class")
    st.caption("Pictures grouped by the class the model *said* (not their true class): when it says this "
               "class, how sure it is on average, how often it is right, and its calibration error.")
    table = class_table(calibration.per_class(preds.probs, preds.labels), classes)
    st.dataframe(table, hide_index=True, placeholder=MISSING, key="calib_classes", column_config={
        "Predicted as this class": st.column_config.NumberColumn(help="Pictures the model gave this class."),
        "Mean confidence": st.column_config.NumberColumn(format="percent",
                                                         help="The average probability it gave this class."),
        "Right": st.column_config.NumberColumn(format="percent",
                                               help="How often this class was the right answer (its precision)."),
        "ECE": st.column_config.NumberColumn(format="percent", help=ECE_HELP),
    })


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------

def calibration_view(summary: catalog.RunSummary) -> None:
    """Everything below the title; re-run every few seconds while the run trains."""
    preds, split = pick_predictions(summary)
    classes = loaders.class_names(summary, preds.probs.shape[1])
    rel = calibration.reliability(*calibration.top_label(preds.probs, preds.labels))
    show_overall(rel, split)
    show_diagram(rel)
    show_classes(preds, classes)


st.title("How sure vs how right")
st.caption("Whether the model's confidence can be trusted: when it says it is 90% sure, is it right 90% of "
           "the time?")
state.show_selected_run(calibration_view, REFRESH_S)
