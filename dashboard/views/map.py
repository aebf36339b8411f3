"""Map: the test set laid out by what the model sees in each picture, and each picture's training look-alikes.

One dot per test picture, placed by a t-SNE layout of the model's penultimate-layer features (saved by
core/training/feature_map.py at the end of training, or computed here for older runs as a background job with a
progress bar and a Stop). Colour is the true class, a cross marks a mistake, and the square chosen on
the Errors page is highlighted; hovering a mistake (or the square's dot) shows its picture. Dragging a
box shows exactly the pictures inside it; for a picture clicked on the map (or chosen in the picker, the
keyboard's way), its 8 nearest training pictures (cosine similarity of the features) say what it "sits
among". The chart itself is dashboard/charts/maps.py's, shared with the one-file report.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import streamlit as st

from core.analysis import features
from core.rundir import catalog, layout
from core.rundir.predictions import Predictions
from core.rundir.state import RunState
from core.training.device import resolve_device
from dashboard import charts, loaders, matrix, state, tiles
from dashboard.text import plain

BOX_KEY = "map_box"  # ((x lo, x hi), (y lo, y hi)) of the dragged box, or absent
CHART_KEY = "map_chart"
PICKED_PAGE_KEY = "map_box_page"
LOOKALIKE_KEY = "map_lookalike"
CLICKED_KEY = "map_clicked"  # position of the picture last clicked on the map, or absent
COMPUTE_KEY = "map_compute"
STOP_KEY = "map_stop"
PROGRESS_EVERY_S = 1.0
# Hover pictures: only the mistakes and the chosen square's pictures get one, at most this many. Measured
# for 10,000 CIFAR-10 dots: 0.6 MB of chart without pictures, 2.1 MB with 1,756 mistakes' pictures, 8.4 MB
# with all of them; the cap keeps the chart under about 3 MB.
MAX_THUMBNAILS = 2500


# ---------------------------------------------------------------------------------------------
# Making the map for a run that has none
# ---------------------------------------------------------------------------------------------

def start_map(run_id: str) -> None:
    try:
        state.job_manager().compute_map(run_id)
    except catalog.RunError as exc:
        st.session_state["map_refusal"] = str(exc)


def offer_map(summary: catalog.RunSummary, why: str) -> None:
    """No usable map yet: say why, and start computing one (or show the job that is)."""
    job = state.job_manager().map_job(summary.run_id)  # its state: a run's word (running, failed, stopped) or done
    if job is not None and job.state == RunState.RUNNING:
        st.fragment(show_progress, run_every=PROGRESS_EVERY_S)(summary.run_id)
        st.stop()
    st.info(why)
    if job is not None and job.state == RunState.FAILED:
        st.error(f"The last try did not finish: {plain(job.error or '')}")
    elif job is not None and job.state == RunState.STOPPED:
        st.caption("The last try was stopped before it finished; nothing of it was kept.")
    st.button("Compute the map", key=COMPUTE_KEY, icon=":material/scatter_plot:", on_click=start_map,
              args=(summary.run_id,), help="Runs the model over the test and training pictures once and lays the "
              "test pictures out on a map (about a minute on a processor). It runs in the background.")
    refusal = st.session_state.pop("map_refusal", None)
    if refusal:
        st.error(plain(refusal))
    st.stop()


def show_progress(run_id: str) -> None:
    """The running job's progress bar and Stop, refreshed every second; the whole page again when it ends."""
    job = state.job_manager().map_job(run_id)
    if job is None or job.state != RunState.RUNNING:
        st.rerun()  # the map is ready (or the job ended): the whole page shows what is there now
    st.progress(min(max(job.fraction, 0.0), 1.0), text=f"Computing the map: {job.message}…")
    st.button("Stop", key=STOP_KEY, icon=":material/stop:", on_click=job.stop,
              help="Stops computing the map; nothing is written until it is complete.")


# ---------------------------------------------------------------------------------------------
# The map itself
# ---------------------------------------------------------------------------------------------

def _dragged_box(selection) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The box in the chart's selection when it has an area (a click starts a box of no size), else None."""
    box = selection.get("box") or {}
    if "x" not in box or "y" not in box:
        return None
    x, y = tuple(box["x"]), tuple(box["y"])
    return (x, y) if x[0] != x[1] and y[0] != y[1] else None


def _on_select(index: np.ndarray) -> None:
    """A drag makes a new box; a click on a dot chooses that picture and keeps the box; a click beside
    the dots removes the box. `index` maps the chart's "picture" (the source-split index) to positions."""
    selection = st.session_state[CHART_KEY].selection
    box, dot = _dragged_box(selection), selection.get("dot") or []
    if box is not None and box != st.session_state.get(BOX_KEY):  # a drag, even one ending on a dot
        st.session_state[BOX_KEY] = box
        st.session_state.pop(CLICKED_KEY, None)  # the picker goes back to the box's pictures
        st.session_state[PICKED_PAGE_KEY] = 1
    elif dot:
        where = np.flatnonzero(index == int(dot[0]["picture"]))
        if len(where):
            st.session_state[CLICKED_KEY] = int(where[0])
            st.session_state[LOOKALIKE_KEY] = int(where[0])  # the picker follows the click
    elif box is None:
        st.session_state.pop(BOX_KEY, None)  # a click beside the dots removed the box
        st.session_state[PICKED_PAGE_KEY] = 1


@st.cache_data(max_entries=4, show_spinner=False)
def _thumbnails(_images, run_key: str, pictures: tuple[tuple[int, int], ...]) -> dict[int, str]:
    """Hover pictures of some dots ((position, picture) pairs -> {position: WebP data URI}), made once per
    run and set of dots; `run_key` names the run and the version of its test results."""
    return {pos: tiles.thumbnail_uri(_images.images[picture]) for pos, picture in pictures}


def hover_pictures(summary: catalog.RunSummary, preds: Predictions, images,
                   chosen: tuple[int, int] | None) -> dict[int, str] | None:
    """Thumbnails for the mistakes and the chosen square's dots (the ones worth a look), within MAX_THUMBNAILS."""
    if images is None:
        return None
    worth = preds.labels != preds.pred
    if chosen is not None:
        worth |= (preds.labels == chosen[0]) & (preds.pred == chosen[1])
    positions = np.flatnonzero(worth)[:MAX_THUMBNAILS]
    pairs = tuple((int(p), int(preds.index[p])) for p in positions)
    return _thumbnails(images, f"{summary.path}:{state.by_mtime(layout.test_predictions(summary.path))}", pairs)


def show_map(frame: pd.DataFrame, classes: list[str], chosen: tuple[int, int] | None) -> None:
    mistakes = int((frame["answer"] == charts.ANSWERS[1]).sum())
    st.caption(f"Each dot is one of the {len(frame):,} test pictures, placed by what the model sees in it: pictures "
               f"it finds alike sit close together. Colour is the true class; the {mistakes:,} crosses are mistakes. "
               "Drag a box over some dots to see exactly those pictures below; click a dot to see its look-alikes.")
    if chosen is not None:
        t, p = chosen
        st.caption(f"Highlighted: the {int(frame['square'].sum()):,} {plain(classes[t])} pictures the model called "
                   f"{plain(classes[p])} (the square chosen on the Errors page).")
    st.altair_chart(charts.map_chart(frame, chosen is not None), key=CHART_KEY, width="stretch",
                    selection_mode=["box", "dot"], on_select=partial(_on_select, frame["picture"].to_numpy()))


def box_positions(layout: features.FeatureSet) -> np.ndarray | None:
    box = st.session_state.get(BOX_KEY)
    if not box:
        return None
    return features.inside_box(layout.values, box[0], box[1])


def show_box(positions: np.ndarray | None, preds: Predictions, images, classes: list[str]) -> None:
    if positions is None:
        st.info("Drag a box on the map to see the pictures inside it here.")
        return
    wrong = int((preds.labels[positions] != preds.pred[positions]).sum())
    st.markdown(f"**{len(positions):,} pictures inside the box**, {wrong:,} of them mistakes.")
    if len(positions):
        page = tiles.page_picker(len(positions), PICKED_PAGE_KEY)
        on_page = positions[(page - 1) * tiles.TILES_PER_PAGE: page * tiles.TILES_PER_PAGE]
        with st.container(key="map_picked"):
            tiles.prediction_tiles(preds, on_page, images, classes, bars="popover")


# ---------------------------------------------------------------------------------------------
# Look-alikes from the training pictures
# ---------------------------------------------------------------------------------------------

def candidates(preds: Predictions, box: np.ndarray | None, chosen: tuple[int, int] | None,
               clicked: int | None = None) -> np.ndarray:
    """The pictures offered for look-alikes: those in the box, else the chosen square's, else the mistakes;
    a picture clicked on the map comes first when it is not among them."""
    offered = _offered(preds, box, chosen)
    if clicked is None or not 0 <= clicked < len(preds.labels) or clicked in offered:
        return offered
    return np.concatenate([[clicked], offered])


def _offered(preds: Predictions, box: np.ndarray | None, chosen: tuple[int, int] | None) -> np.ndarray:
    if box is not None and len(box):
        return box
    if chosen is not None:
        square = np.flatnonzero((preds.labels == chosen[0]) & (preds.pred == chosen[1]))
        if len(square):
            return square
    return np.flatnonzero(preds.labels != preds.pred)


def show_lookalikes(summary: catalog.RunSummary, preds: Predictions, test_feats: features.FeatureSet, options: np.ndarray,
                    images, classes: list[str]) -> None:
    st.subheader("Look-alikes from training")
    train, problem = loaders.feature_set(summary.path, "train")
    train_images = loaders.train_images(summary.config)
    if train is not None:
        problem = features.lookalike_problem(test_feats, train, len(classes),
                                             None if train_images is None else len(train_images.images))
    if problem:
        st.warning(plain(problem))
        return
    if train is None:
        missing = layout.features(summary.path, "train").relative_to(summary.path).as_posix()
        st.info(f"This run has no {missing}, so there are no training pictures to "
                "compare with; compute the map again to make it.")
        return
    if not len(options):
        st.info("There is no picture to compare: drag a box around some dots.")
        return
    names = np.asarray(classes, dtype=object)
    pos = st.selectbox("Picture", options, key=LOOKALIKE_KEY, format_func=lambda p: (
        f"Picture {preds.index[p]}: {classes[preds.labels[p]]}, the model said {classes[preds.pred[p]]}"),
        help="A dot clicked on the map, or one of the pictures in the box (without a box: of the chosen square "
        "or the mistakes).")
    rows, sims = features.nearest(test_feats.values[pos], train.values, device=resolve_device("auto"))
    neighbour_names = [str(names[train.labels[r]]) for r in rows]
    st.markdown(plain(features.lookalike_sentence(classes[preds.labels[pos]], neighbour_names)))
    picture_col, near_col = st.columns([1, 5])
    if images is not None:
        picture_col.image(tiles.enlarge(images.images[preds.index[pos]], tiles.TILE_SCALE),
                          caption=tiles.tile_caption(classes[preds.labels[pos]], classes[preds.pred[pos]],
                                                     float(preds.probs[pos, preds.pred[pos]])))
    captions = [f"{plain(n)} · {s:.2f} alike" for n, s in zip(neighbour_names, sims)]
    with near_col, st.container(key="map_lookalikes"):
        tiles.captioned_tiles(train_images, train.index[rows], captions)
    st.caption("Alike: the cosine similarity of what the model sees in the two pictures (1 = the same).")


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------

def load_map(summary: catalog.RunSummary, preds: Predictions) -> tuple[features.FeatureSet, features.FeatureSet]:
    """The map and test features matching the saved test predictions; otherwise offers to compute them."""
    layout, problem = loaders.feature_set(summary.path, "map")
    test_feats, test_problem = loaders.feature_set(summary.path, "test")
    problem = problem or test_problem
    if problem:
        offer_map(summary, plain(problem))
    if layout is None or test_feats is None:
        offer_map(summary, "This run has no map yet: runs trained before the map existed, or with it turned off, "
                           "get one here.")
    if not (features.fits_test_results(layout, preds) and features.fits_test_results(test_feats, preds)):
        offer_map(summary, "The map was made for other test results than the ones saved now; compute it again.")
    return layout, test_feats


def map_view(summary: catalog.RunSummary) -> None:
    preds, problem = loaders.predictions(summary.path, "test")
    if problem:
        st.warning(plain(problem))
        st.stop()
    if preds is None:
        st.info(loaders.no_predictions_message(summary, "test"))
        st.stop()
    layout, test_feats = load_map(summary, preds)
    images, data_classes, reason = loaders.run_images(summary.config, preds)
    classes = loaders.class_names(summary, preds.probs.shape[1], data_classes)
    if images is None:
        st.warning(f"{plain(reason)} The map still shows where every picture lies.")
    chosen = matrix.chosen_cell(matrix.ERRORS_PREFIX, classes)
    thumbnails = hover_pictures(summary, preds, images, chosen)
    show_map(charts.map_frame(layout.values, preds, classes, chosen, thumbnails), classes, chosen)
    box = box_positions(layout)
    show_box(box, preds, images, classes)
    options = candidates(preds, box, chosen, st.session_state.get(CLICKED_KEY))
    show_lookalikes(summary, preds, test_feats, options, images, classes)


st.title("Map")
selected = state.selected_run_or_stop()
map_view(selected)
