"""Gallery: a run's test predictions as pictures, and the run's model tried on your own pictures.

The grid is drawn from the test predictions the engine saved (the same ones behind the Errors page),
filtered by true class, predicted class and right/wrong, sorted, and shown a page at a time. Uploaded
pictures and camera photos go through core.data.uploads (made 32x32 RGB or refused in one sentence) and the
run's model via core.training.inference.Predictor, the same inference path the saved predictions came from.
"""
from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from core.analysis import mistakes
from core.data import uploads
from core.rundir import catalog
from dashboard import charts, loaders, state, tiles, where_looked
from dashboard.text import plain

ANY = "Any"
PAGE_KEY = "gallery_page"
OUTCOME_LABELS = {"all": "All", "correct": "Right", "wrong": "Wrong"}
ORDER_LABELS = {"confident-mistakes": "Most confident mistakes first", "least-confident": "Least confident first",
                "random": "Random"}
TOP_K = 5
UPLOAD_LOOKED_KEY = "gallery_upload_where_looked"
PHOTO_NAME = "Your photo"  # what a camera photo is called in its caption and in a refusal


def reset_page() -> None:
    st.session_state[PAGE_KEY] = 1


# ---------------------------------------------------------------------------------------------
# The grid of test predictions
# ---------------------------------------------------------------------------------------------

def filters(classes: list[str]) -> dict:
    """The filter row; returns the keyword arguments of mistakes.gallery_positions."""
    # A row that wraps on a narrow screen, each box wide enough for its longest choice ("Most confident
    # mistakes first"; equal shares of a laptop's width cut it off).
    row = st.container(horizontal=True, gap="medium")
    options = [ANY, *classes]
    true_name = row.selectbox("True class", options, key="gallery_true", on_change=reset_page, width=190,
                              help="Show only pictures that really are of this class.")
    pred_name = row.selectbox("Predicted class", options, key="gallery_pred", on_change=reset_page, width=190,
                              help="Show only pictures the model said are of this class.")
    outcome = row.radio("Result", list(OUTCOME_LABELS), format_func=OUTCOME_LABELS.get, horizontal=True,
                        key="gallery_outcome", on_change=reset_page, width="content",
                        help="Show every picture, only those the model got right, or only its mistakes.")
    order = row.selectbox(
        "Order", list(ORDER_LABELS), format_func=ORDER_LABELS.get, key="gallery_order", on_change=reset_page,
        width=260,
        help="Most confident mistakes: the wrong answers the model was surest of come first. Least confident: "
             "the pictures it hesitated most on. Random: a shuffle, to browse without a pattern.")
    seed = row.number_input("Shuffle number", min_value=0, max_value=2**31 - 1, step=1, key="gallery_seed",
                            on_change=reset_page, disabled=order != "random", width=150,
                            help="For the random order: the same number always gives the same shuffle; "
                                 "change it to see other pictures.")
    return {"true_class": None if true_name == ANY else classes.index(true_name),
            "pred_class": None if pred_name == ANY else classes.index(pred_name),
            "outcome": outcome, "order": order, "seed": int(seed)}


def show_grid(summary: catalog.RunSummary) -> None:
    preds, problem = loaders.predictions(summary.path, "test")
    if problem:
        st.warning(plain(problem))
        return
    if preds is None:
        st.info(loaders.no_predictions_message(summary, "test"))
        return
    images, data_classes, reason = loaders.run_images(summary.config, preds)
    classes = loaders.class_names(summary, preds.probs.shape[1], data_classes)
    if images is None:
        st.warning(f"{plain(reason)} The tiles below show their captions only.")
    chosen = filters(classes)
    positions = mistakes.gallery_positions(preds.labels, preds.pred, preds.probs, **chosen)
    st.caption(f"{len(positions):,} of {len(preds.labels):,} test pictures match.")
    if not len(positions):
        st.info("No picture matches these filters: widen them to see some.")
        return
    page = tiles.page_picker(len(positions), PAGE_KEY)
    looks = where_looked.toggle_looks(summary, "gallery_where_looked", preds, images)
    tiles.prediction_tiles(preds, mistakes.page_of(positions, page, tiles.TILES_PER_PAGE), images, classes,
                            bars="popover", looks=looks)


# ---------------------------------------------------------------------------------------------
# Your own pictures
# ---------------------------------------------------------------------------------------------

def show_uploads(summary: catalog.RunSummary) -> None:
    checkpoint = loaders.predictor_checkpoint(summary.path)
    if checkpoint is None:
        st.info("This run has no saved model yet: one is saved at the end of its first epoch.")
        st.stop()
    upload_col, camera_col = st.columns(2)
    files = upload_col.file_uploader(
        f"Pictures ({uploads.FORMAT_WORDS})", type=list(uploads.EXTENSIONS), accept_multiple_files=True,
        key="gallery_upload",
        help="Pick one or more pictures. The middle square of each is shrunk to 32×32 pixels, like the "
             "training pictures, and this run's model says what it sees.")
    pictures = [(file.name, file.getvalue()) for file in files or []]
    with camera_col:
        photo = camera_photo()
    if photo is not None:
        pictures.append((PHOTO_NAME, photo.getvalue()))
    if pictures:
        looks = where_looked.toggle_looks(summary, UPLOAD_LOOKED_KEY)
        show_predictions(summary, checkpoint, pictures, looks)


def camera_photo() -> UploadedFile | None:
    """A photo from the camera, when the person asks for one.

    Behind a toggle because a camera input asks the browser for the camera as soon as it is drawn, and
    the tabs draw this one whenever the Gallery opens.
    """
    if not st.toggle("Show it a photo", key="gallery_camera_on",
                     help="Use your camera: the browser asks before it turns on."):
        return None
    return st.camera_input("Take a photo", key="gallery_camera",
                           help="The middle square of the photo is shrunk to 32×32 pixels, like an upload.")


def show_predictions(summary: catalog.RunSummary, checkpoint: str, pictures: list[tuple[str, bytes]],
                     looks: where_looked.Looks | None = None) -> None:
    """Each (name, encoded bytes) picture with the run's answer; uploads and photos alike go through
    core.data.uploads and the run's predictor, one batch for all. With `looks`, where it looked for its
    answer and for its second guess, side by side (a picture of your own has no true class)."""
    try:
        model = loaders.predictor(summary.path, checkpoint)
    except ValueError as exc:  # RunError: a damaged or foreign checkpoint, in one sentence
        st.error(plain(exc))
        return
    decoded: dict[int, np.ndarray | None] = {}
    for k, (name, data) in enumerate(pictures):
        try:
            decoded[k] = uploads.load_upload(data, name)
        except uploads.UploadError as exc:
            decoded[k] = None
            st.error(plain(exc))
    good = [k for k, image in decoded.items() if image is not None]
    if not good:
        return
    stack = np.stack([decoded[k] for k in good])  # (N, 32, 32, 3)
    probs = model.predict(stack)  # (N, C), one batch for all pictures
    guesses = np.argsort(-probs, axis=1)[:, :2]  # (N, 2): its answer and its second guess
    maps = upload_maps(looks, stack, guesses) if looks is not None else None
    for n, (k, row) in enumerate(zip(good, probs)):
        best = int(row.argmax())
        picture_col, chart_col = st.columns([1, 3], vertical_alignment="center")
        picture_col.image(tiles.enlarge(decoded[k], tiles.TILE_SCALE),
                          caption=f"{plain(pictures[k][0])}: {plain(model.classes[best])} ({row[best]:.0%} sure)")
        chart_col.altair_chart(charts.top_k_chart(row, model.classes, TOP_K), width="stretch")
        if maps is not None:
            where_looked.side_by_side(decoded[k], [(model.classes[c], maps[n, j]) for j, c in enumerate(guesses[n])],
                                      tiles.TILE_SCALE)


def upload_maps(looks: where_looked.Looks, stack: np.ndarray, guesses: np.ndarray) -> np.ndarray | None:
    """(N, 2, 32, 32): where it looked for each picture's answer and second guess; None (said) if it cannot tell."""
    digest = hashlib.sha1(stack.tobytes()).hexdigest()  # names the pictures for the cache
    pictures = np.concatenate([stack, stack])
    maps, problem = where_looked.maps_for(looks, ("upload", digest), pictures, np.concatenate(guesses.T))
    if maps is None:
        st.warning(plain(problem))
        return None
    return np.stack([maps[:len(stack)], maps[len(stack):]], axis=1)


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------

st.title("Gallery")
selected = state.selected_run_or_stop()
grid_tab, upload_tab = st.tabs(["Test pictures", "Your own pictures"])
with grid_tab:
    show_grid(selected)
with upload_tab:
    show_uploads(selected)
