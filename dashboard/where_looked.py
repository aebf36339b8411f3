"""'Show where it looked': the toggle, the Grad-CAM maps of the pictures on screen, and their overlays.

A page draws `toggle_looks(...)` once above its tiles; when it is on, it hands the returned `Looks` to
tiles.prediction_tiles (or uploads' own view), which colours each tile by where the model looked to give
its answer and adds a "Why?" popover with the true class's and the predicted class's maps side
by side. Maps come from core.analysis.saliency through the run's Predictor (the one inference path), only for the
pictures drawn, and are cached per checkpoint version and picture, so paging back costs nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from core.analysis import saliency
from core.data import ImageSet
from core.rundir import catalog, layout, predictions
from dashboard import loaders
from dashboard.state import by_mtime
from dashboard.text import plain

LABEL = "Show where it looked"
HELP = ("Colours each picture by where the model looked to give its answer: red areas swayed it most, blue "
        "ones hardly at all (a Grad-CAM map). Each picture's 'Why?' button compares where it "
        "looked for the true class with where it looked for the class it chose.")
VAL_NOTE = (" On the validation set the maps come from the run's saved model, which may look differently "
            "from the model as it was after the epoch shown.")
POPOVER = "Why?"  # short: the Errors page's tiles are about 100 px wide


@dataclass(frozen=True)
class Looks:
    """Which run's saved model draws the maps (a checkpoint: "last" or "best")."""
    run_dir: Path
    checkpoint: str


# ---------------------------------------------------------------------------------------------
# The toggle
# ---------------------------------------------------------------------------------------------

def toggle(key: str, preds: predictions.Predictions | None = None) -> bool:
    """The toggle alone (the Errors page puts it in the row above its matrix); whether it is on."""
    note = VAL_NOTE if preds is not None and preds.split == "val" else ""
    return st.toggle(LABEL, key=key, help=HELP + note)


def looks_for(summary: catalog.RunSummary, preds: predictions.Predictions | None = None,
              images: ImageSet | None = None) -> Looks | None:
    """Which model draws the maps of `summary`'s pictures; None, saying why, when they cannot be drawn."""
    checkpoint = loaders.predictor_checkpoint(summary.path)
    if checkpoint is None:
        st.info("This run has no saved model yet, so there is nothing to ask where it looked; "
                "one is saved at the end of its first epoch.")
        return None
    if preds is not None and images is None:
        st.info("The pictures are not available here, so there is nothing to colour.")
        return None
    return Looks(summary.path, checkpoint)


def toggle_looks(summary: catalog.RunSummary, key: str, preds: predictions.Predictions | None = None,
                 images: ImageSet | None = None) -> Looks | None:
    """The toggle and, when it is on, `looks_for`: what the Gallery draws above its tiles and uploads."""
    return looks_for(summary, preds, images) if toggle(key, preds) else None


# ---------------------------------------------------------------------------------------------
# The maps, cached per checkpoint version and picture
# ---------------------------------------------------------------------------------------------

@st.cache_data(max_entries=64, show_spinner="Working out where it looked…")
def _maps(run_dir: str, checkpoint: str, mtime_ns: int, key: tuple, classes: tuple[int, ...],
          _images: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    # `key` names the pictures (split and places in it), so the pictures themselves are not hashed.
    try:
        model = loaders.predictor(Path(run_dir), checkpoint)
        return saliency.predictor_grad_cam(model, _images, np.array(classes)), None
    except ValueError as exc:  # RunError (damaged checkpoint) or a model without a layer: one sentence
        return None, str(exc)


def maps_for(looks: Looks, key: tuple, images: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """(N, 32, 32) maps of `images` (uint8 (N, 32, 32, 3), named by `key`) for `classes`, or why not."""
    mtime = by_mtime(layout.checkpoint(looks.run_dir, looks.checkpoint))
    return _maps(str(looks.run_dir), looks.checkpoint, mtime, key, tuple(int(c) for c in classes), images)


def tile_maps(looks: Looks, preds: predictions.Predictions, positions: np.ndarray,
              images: ImageSet) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The true class's and the predicted class's maps (each (K, 32, 32)) of the tiles at `positions`.

    Both come from one batch; a sentence is shown (and None, None returned) when they cannot be drawn.
    """
    places = preds.index[positions]
    pictures = images.images[places]                                     # (K, 32, 32, 3)
    classes = np.concatenate([preds.labels[positions], preds.pred[positions]])
    maps, problem = maps_for(looks, (preds.split, *(int(p) for p in places)), np.concatenate([pictures, pictures]),
                             classes)
    if maps is None:
        st.warning(plain(problem))
        return None, None
    return maps[:len(positions)], maps[len(positions):]


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------

def looked_caption(class_name: str) -> str:
    return f"Where it looked for {plain(class_name)}"


def side_by_side(image: np.ndarray, maps: list[tuple[str, np.ndarray]], scale: int) -> None:
    """The picture coloured by each (class name, map), in columns side by side."""
    for column, (name, heat) in zip(st.columns(len(maps)), maps):
        column.image(saliency.overlay(image, heat, scale), caption=looked_caption(name))


def compare_popover(image: np.ndarray, true_name: str, pred_name: str, true_map: np.ndarray,
                    pred_map: np.ndarray, scale: int) -> None:
    """A tile's button opening the true class's and the predicted class's maps side by side."""
    with st.popover(POPOVER, icon=":material/visibility:",
                    help="Where the model looked for the true class, beside where it looked for its answer."):
        if true_name == pred_name:
            st.caption("It answered right, so both are the same map.")
            side_by_side(image, [(pred_name, pred_map)], scale)
        else:
            side_by_side(image, [(true_name, true_map), (pred_name, pred_map)], scale)
