"""Learning dynamics: what happened to each validation picture over the epochs of the chosen run.

From the validation predictions saved after every epoch (core.analysis.dynamics over loaders.epoch_stack):
- a data map (dataset cartography): each picture's mean confidence in its true class against how much
  that confidence changed from epoch to epoch, coloured by region (easy-to-learn, ambiguous,
  hard-to-learn); drawing a box on it, or picking a region, shows those pictures;
- when pictures were first right, and from when they stayed right;
- the pictures forgotten most often (right after one epoch, wrong after the next).
Pictures are shown with the model's answer after the newest epoch. A training run's page re-reads
its files every few seconds; each epoch file is read once.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import streamlit as st

from core.analysis import dynamics, mistakes
from core.analysis.dynamics import Dynamics, EpochStack
from core.rundir import catalog
from core.rundir.predictions import Predictions
from dashboard import charts, loaders, state, tiles
from dashboard.text import plain
from dashboard.wording import MISSING, plural

REFRESH_S = 5  # a training run's page re-reads its files this often
SHOW_KEY = "dynamics_show"  # what the picture grid shows: ("box", (conf lo, hi, var lo, hi)) or ("region", k)
REGION_KEY = "dynamics_region"
MAP_GEN_KEY = "dynamics_map_gen"  # bumped when a region is picked: the map's box is cleared
PICKED_PAGE_KEY = "dynamics_picked_page"
FORGOTTEN_PAGE_KEY = "dynamics_forgotten_page"
THRESHOLDS = (f"A picture is **ambiguous** when its confidence varied by at least {dynamics.AMBIGUOUS_SPREAD} "
              f"(standard deviation across epochs); otherwise it is **easy-to-learn** when its mean confidence is "
              f"at least {dynamics.EASY_CONFIDENCE}, and **hard-to-learn** below that.")


# ---------------------------------------------------------------------------------------------
# Reading the run
# ---------------------------------------------------------------------------------------------

def read_dynamics(summary: catalog.RunSummary) -> tuple[EpochStack, Dynamics]:
    """The run's epochs and per-picture dynamics; stops with one sentence when there are too few epochs."""
    stack = loaders.epoch_stack(summary.path)
    for skipped in stack.skipped:
        st.warning(f"Epoch {skipped.epoch} is left out: {plain(skipped.reason)}")
    if not len(stack.epochs) and not stack.skipped:
        st.info(loaders.no_predictions_message(summary, "val"))
        st.stop()
    problem = dynamics.too_few_epochs(len(stack.epochs))
    if problem:
        st.info(problem)
        st.stop()
    return stack, dynamics.learning_dynamics(stack)


def show_totals(d: Dynamics) -> None:
    n = len(d.labels)
    right_now = int(d.correct[-1].sum())
    columns = st.columns(4)
    columns[0].metric("Validation pictures", f"{n:,}")
    columns[1].metric("Right after the newest epoch", f"{right_now:,}")
    columns[2].metric("Forgotten at least once", f"{int((d.forgetting > 0).sum()):,}")
    columns[3].metric("Never right", f"{int((d.first_correct == dynamics.NEVER).sum()):,}")
    st.caption(f"Over the {len(d.epochs)} epochs saved so far ({d.epochs[0]} to {d.epochs[-1]}). "
               "Pictures are shown with the model's answer after the newest epoch.")


# ---------------------------------------------------------------------------------------------
# The data map
# ---------------------------------------------------------------------------------------------

def map_frame(d: Dynamics, preds: Predictions, classes: list[str]) -> pd.DataFrame:
    return pd.DataFrame({
        "picture": preds.index, "true": np.asarray(classes, dtype=object)[d.labels],
        "confidence": d.confidence, "variability": d.spread,
        "region": np.asarray(dynamics.REGIONS, dtype=object)[d.region],
        "forgotten": d.forgetting,
        "first_right": [MISSING if f == dynamics.NEVER else str(f) for f in d.first_correct],
    })


def _on_box(chart_key: str) -> None:
    box = st.session_state[chart_key].selection.get("box") or {}
    if "confidence" in box and "variability" in box:
        st.session_state[SHOW_KEY] = ("box", (*sorted(box["confidence"]), *sorted(box["variability"])))
        st.session_state[REGION_KEY] = None
        st.session_state[PICKED_PAGE_KEY] = 1
    elif st.session_state.get(SHOW_KEY, ("",))[0] == "box":
        st.session_state.pop(SHOW_KEY)  # a click beside the box removed it


def _on_region() -> None:
    region = st.session_state.get(REGION_KEY)
    if region is None:
        st.session_state.pop(SHOW_KEY, None)
    else:
        st.session_state[SHOW_KEY] = ("region", region)
        st.session_state[MAP_GEN_KEY] = st.session_state.get(MAP_GEN_KEY, 0) + 1  # the map drops its box
    st.session_state[PICKED_PAGE_KEY] = 1


def show_map(d: Dynamics, preds: Predictions, classes: list[str]) -> None:
    st.subheader("Data map")
    st.caption("Each dot is one validation picture. Up means the model was, on average over the epochs, sure "
               "of the right answer; right means its confidence went up and down a lot from epoch to epoch. "
               "Drag a box over some dots to see those pictures below, or pick a region.")
    st.caption(THRESHOLDS)
    chart_key = f"dynamics_map_{st.session_state.get(MAP_GEN_KEY, 0)}"
    st.altair_chart(charts.data_map_chart(map_frame(d, preds, classes)), key=chart_key, width="stretch",
                    selection_mode="box", on_select=partial(_on_box, chart_key))
    counts = np.bincount(d.region, minlength=len(dynamics.REGIONS))
    st.pills("Show a region's pictures", range(len(dynamics.REGIONS)), format_func=dynamics.REGIONS.__getitem__,
             key=REGION_KEY, on_change=_on_region,
             help="Easy-to-learn: steadily right. Ambiguous: the model kept changing its mind. "
                  "Hard-to-learn: steadily wrong, sometimes a mislabelled or unusual picture.")
    st.caption(" · ".join(f"{name}: {n:,}" for name, n in zip(dynamics.REGIONS, counts)))


def chosen_positions(d: Dynamics) -> tuple[str, np.ndarray] | None:
    """The pictures chosen on the map (a box or a region) and a title for them, or None."""
    shown = st.session_state.get(SHOW_KEY)
    if not shown:
        return None
    kind, value = shown
    if kind == "region":
        positions = dynamics.region_positions(d, value)
        return f"{len(positions):,} {dynamics.REGIONS[value]} pictures", positions
    c_lo, c_hi, v_lo, v_hi = value
    positions = dynamics.box_positions(d, (c_lo, c_hi), (v_lo, v_hi))
    return (f"{len(positions):,} pictures inside the box (mean confidence {c_lo:.2f} to {c_hi:.2f}, "
            f"variability {v_lo:.2f} to {v_hi:.2f})"), positions


def show_chosen(d: Dynamics, preds: Predictions, images, classes: list[str]) -> None:
    chosen = chosen_positions(d)
    if chosen is None:
        st.info("Draw a box on the map, or pick a region, to see its pictures here.")
        return
    title, positions = chosen
    st.markdown(f"**{title}**")
    st.caption("The least confident first.")
    show_tiles(preds, positions, images, classes, PICKED_PAGE_KEY)


def show_tiles(preds: Predictions, positions: np.ndarray, images, classes: list[str], page_key: str) -> np.ndarray:
    """A page of picture tiles with its page picker; returns the positions on the page."""
    if not len(positions):
        return positions
    page = tiles.page_picker(len(positions), page_key)
    on_page = mistakes.page_of(positions, page, tiles.TILES_PER_PAGE)
    tiles.prediction_tiles(preds, on_page, images, classes)
    return on_page


# ---------------------------------------------------------------------------------------------
# When pictures were learned, and forgotten
# ---------------------------------------------------------------------------------------------

def show_first_learned(d: Dynamics) -> None:
    st.subheader("When pictures were learned")
    first, for_good = dynamics.first_learned_counts(d)
    st.altair_chart(charts.first_learned_chart(d.epochs, first, for_good), key="dynamics_first_learned",
                    width="stretch")
    never = int((d.first_correct == dynamics.NEVER).sum())
    st.caption(f"For each epoch: how many pictures the model got right for the first time, and how many it "
               f"got right from then on without a slip. {never:,} of {len(d.labels):,} pictures were never right.")


def show_forgotten(d: Dynamics, preds: Predictions, images, classes: list[str]) -> None:
    st.subheader("Most forgotten pictures")
    positions = dynamics.most_forgotten(d)
    if not len(positions):
        st.success("No picture was forgotten: once the model got a picture right, it stayed right.")
        return
    st.caption(f"{len(positions):,} pictures were forgotten at least once: right after one epoch, wrong after "
               f"the next. The most often forgotten first (up to {plural(int(d.forgetting.max()), 'time')}).")
    on_page = show_tiles(preds, positions, images, classes, FORGOTTEN_PAGE_KEY)
    st.dataframe(forgotten_table(d, preds, classes, on_page), hide_index=True, placeholder=MISSING)


def forgotten_table(d: Dynamics, preds: Predictions, classes: list[str], positions: np.ndarray) -> pd.DataFrame:
    """The pictures above in numbers; an epoch that never came is missing (shown as MISSING)."""
    def epochs_of(values: np.ndarray) -> list[int | None]:
        return [None if v == dynamics.NEVER else int(v) for v in values[positions]]
    return pd.DataFrame({
        "Picture": preds.index[positions], "True class": [classes[k] for k in d.labels[positions]],
        "Times forgotten": d.forgetting[positions], "First right after epoch": epochs_of(d.first_correct),
        "Right for good from epoch": epochs_of(d.learned_for_good)}).astype({
            "First right after epoch": "Int64", "Right for good from epoch": "Int64"})


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------

def dynamics_view(summary: catalog.RunSummary) -> None:
    """Everything below the title; re-run every few seconds while the run trains."""
    stack, d = read_dynamics(summary)
    preds = stack.predictions()  # the newest epoch: what the tiles show
    images, data_classes, reason = loaders.run_images(summary.config, preds)
    classes = loaders.class_names(summary, preds.probs.shape[1], data_classes)
    if images is None:
        st.warning(f"{plain(reason)} The numbers below are still exact.")
    show_totals(d)
    show_map(d, preds, classes)
    with st.container(key="dynamics_picked"):  # keyed: tests and the browser find each grid of pictures
        show_chosen(d, preds, images, classes)
    show_first_learned(d)
    with st.container(key="dynamics_forgotten"):
        show_forgotten(d, preds, images, classes)


st.title("Learning dynamics")
st.caption("How the model's answers on the validation pictures changed from epoch to epoch: which pictures it "
           "learned early, which it kept getting wrong, and which it learned and then forgot again.")
state.show_selected_run(dynamics_view, REFRESH_S)
