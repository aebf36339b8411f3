"""Pictures with their predictions: enlarged tiles, captions, top-3 bars and a page picker.

Used by the Errors page, the Gallery, the live view's mistakes and the Compare page.
"""
from __future__ import annotations

import base64
import io

import numpy as np
import streamlit as st
from PIL import Image

from core.analysis import mistakes, saliency
from core.data import ImageSet
from core.rundir import predictions
from dashboard import where_looked
from dashboard.text import plain

TILES_PER_PAGE = 24  # images drawn at once: a page stays quick to send even for a 10,000-image test set
TILE_COLUMNS = 6
TILE_SCALE = 4  # 32 px -> 128 px on screen
PAGE_PICKER_PX = 180  # the page number box: room for "Page (of 417)" on one line and its +/- buttons


def enlarge(image: np.ndarray, scale: int = 4) -> np.ndarray:
    """Upscale a small (H, W, 3) uint8 image by pixel repetition, so it stays crisp when shown large."""
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


@st.cache_data(max_entries=1024, show_spinner=False)
def tile_png(image: np.ndarray, scale: int = TILE_SCALE) -> bytes:
    """A small picture enlarged `scale` times, as PNG bytes: each picture is encoded once, not at every
    refresh of a page that shows it again (the live view's chosen square, every 1.5 s)."""
    buffer = io.BytesIO()
    Image.fromarray(enlarge(image, scale)).save(buffer, format="PNG")
    return buffer.getvalue()


def thumbnail_uri(image: np.ndarray, scale: int = 2) -> str:
    """A small (H, W, 3) uint8 picture, enlarged `scale` times, as a WebP data URI for a chart's hover:
    about 0.8 KB for a CIFAR-10 picture at 64x64 (PNG would be about 3.5 times larger), so a few thousand
    fit in one chart."""
    buffer = io.BytesIO()
    Image.fromarray(enlarge(image, scale)).save(buffer, format="WEBP", quality=75)
    return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def tile_caption(true_name: str, pred_name: str, confidence: float) -> str:
    """An image's caption (Markdown, as st.image and st.caption render it): class names shown as typed."""
    return f"True: {plain(true_name)} · Predicted: {plain(pred_name)} · {confidence:.0%} sure"


def probability_bars(probs_row: np.ndarray, classes: list[str], k: int = 3) -> None:
    """The k most likely classes of one image as labelled bars."""
    for c, p in mistakes.top_k(probs_row, k):
        st.progress(min(max(p, 0.0), 1.0), text=f"{plain(classes[c])}: {p:.1%}")


def prediction_tiles(preds: predictions.Predictions, positions: np.ndarray, images: ImageSet | None,
                     classes: list[str], *, bars: str = "inline", columns: int = TILE_COLUMNS,
                     looks: where_looked.Looks | None = None) -> None:
    """A grid of predictions, `columns` a row: enlarged image, caption (true, predicted, confidence), top-3 bars.

    bars: "inline" draws the bars under each image; "popover" puts them behind a small button.
    looks (from where_looked.toggle): each image coloured by where the model looked for its answer, with
    a popover comparing that with where it looked for the true class.
    Without images (data not on this machine) the tiles show the caption alone.
    """
    true_maps = pred_maps = None
    if looks is not None and images is not None and len(positions):
        true_maps, pred_maps = where_looked.tile_maps(looks, preds, positions, images)  # only the tiles drawn
    for row_start in range(0, len(positions), columns):
        for offset, (column, pos) in enumerate(zip(st.columns(columns), positions[row_start:row_start + columns])):
            true_c, pred_c = int(preds.labels[pos]), int(preds.pred[pos])
            caption = tile_caption(classes[true_c], classes[pred_c], float(preds.probs[pos, pred_c]))
            with column:
                if images is None:
                    st.caption(caption)
                elif pred_maps is None:
                    st.image(tile_png(images.images[preds.index[pos]]), caption=caption)
                else:
                    k, image = row_start + offset, images.images[preds.index[pos]]
                    st.image(saliency.overlay(image, pred_maps[k], TILE_SCALE), caption=caption)
                    where_looked.compare_popover(image, classes[true_c], classes[pred_c], true_maps[k],
                                                 pred_maps[k], TILE_SCALE)
                if bars == "inline":
                    probability_bars(preds.probs[pos], classes)
                else:
                    with st.popover("Top 3", help="The three classes the model found most likely for this image."):
                        probability_bars(preds.probs[pos], classes)


def page_picker(n_items: int, key: str, label: str = "Page") -> int:
    """A page number box when there is more than one page of tiles; returns the 1-based page."""
    pages = mistakes.page_count(n_items, TILES_PER_PAGE)
    if pages == 1:
        return 1
    if st.session_state.get(key, 1) > pages:
        st.session_state[key] = pages  # the list shrank (new filters, a refresh): stay in range
    # A fixed width rather than a share of the row: in a narrow column (the Errors page's pictures beside
    # the matrix) a share would squeeze the box and wrap its label.
    return int(st.number_input(f"{label} (of {pages})", min_value=1, max_value=pages, step=1, key=key,
                               width=PAGE_PICKER_PX,
                               help=f"{TILES_PER_PAGE} images are shown at a time; pick which group to see."))


def pair_caption(true_name: str, answers: dict[str, tuple[str, float]]) -> str:
    """A picture's caption with several runs' answers: 'True: cat · A: dog (80%) · B: cat (95%)'."""
    said = " · ".join(f"{run}: {plain(name)} ({sure:.0%})" for run, (name, sure) in answers.items())
    return f"True: {plain(true_name)} · {said}"


def captioned_tiles(images: ImageSet | None, pictures: np.ndarray, captions: list[str]) -> None:
    """A grid of enlarged pictures (`pictures`: places in `images`) with a Markdown caption each.

    Without images (data not on this machine) the tiles show the caption alone.
    """
    for row_start in range(0, len(pictures), TILE_COLUMNS):
        columns = st.columns(TILE_COLUMNS)
        for column, picture, caption in zip(columns, pictures[row_start:row_start + TILE_COLUMNS],
                                            captions[row_start:row_start + TILE_COLUMNS]):
            with column:
                if images is not None:
                    st.image(tile_png(images.images[picture]), caption=caption)
                else:
                    st.caption(caption)
