"""The live view's mistakes (Train page): the newest epoch's validation confusion matrix, its most
mixed-up pair in words and how that pair moved since the epoch before. A click on a square shows its
pictures right here, through the Errors page's own component (dashboard/matrix.py): beside the matrix,
so that with the matrix on screen its first pictures are too (the words go above, full width).

Drawn with the page, below the live view's fragment: the fragment lists the predictions folder at every
refresh and reruns the page when a newer epoch appears, so all of this is drawn once an epoch (and when a
square is clicked), not every refresh. Each epoch's counts are read from its file once
(loaders.epoch_confusion), and the pictures' file only once a square is chosen.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import streamlit as st

from core.analysis import mistakes
from core.rundir import catalog, layout, predictions
from core.rundir.state import LIVE_STATES
from dashboard import loaders, matrix
from dashboard.text import plain
from dashboard.wording import change_text, plural

PREFIX = "live_mistakes"  # the matrix's keys: live_mistakes_cell, live_mistakes_matrix_N, ...
WAITING = "When the first epoch ends, a matrix of the mistakes on the validation pictures appears here."


FIRST_LOOK = 0  # newest_epoch while only the first look, halfway through epoch 1, has been saved


def newest_epoch(run_dir: Path) -> int | None:
    """The newest epoch with validation predictions; FIRST_LOOK while there is only the first look halfway
    through epoch 1 (core.training.engine saves one when that half took a while); None before either."""
    epochs = predictions.val_epochs(run_dir)
    if epochs:
        return epochs[-1]
    return FIRST_LOOK if layout.val_first_look(run_dir).is_file() else None


def show(summary: catalog.RunSummary) -> None:
    """The newest epoch's matrix and its words; before the first epoch's end, the first look's matrix or a line
    saying a matrix will come."""
    epochs = predictions.val_epochs(summary.path)
    if not epochs:
        _first_look(summary)
        return
    epoch = epochs[-1]
    counts, problem = loaders.epoch_confusion(summary.path, epoch)
    if problem:
        st.warning(plain(problem))
        return
    if counts is None:  # its file went between listing and reading (a restart clears the run's predictions)
        return
    classes = loaders.class_names(summary, len(counts))
    st.markdown(f"**Mistakes on the validation pictures after epoch {epoch}**")
    _words(counts, classes, _previous(summary, epochs, counts.shape))
    matrix.errors_page_link(PREFIX, epoch)
    _matrix_and_pictures(summary, counts, classes, lambda: loaders.predictions(summary.path, "val", epoch))


def _first_look(summary: catalog.RunSummary) -> None:
    preds, problem = loaders.first_look(summary.path)
    if problem:
        st.warning(plain(problem))
        return
    if preds is None:
        if summary.state in LIVE_STATES and summary.config.get("val_fraction") != 0:
            st.caption(WAITING)
        return
    counts = mistakes.confusion_counts(preds.labels, preds.pred, preds.probs.shape[1])
    classes = loaders.class_names(summary, len(counts))
    st.markdown("**Mistakes on the validation pictures halfway through epoch 1**")
    st.caption("A first look while the first epoch is slow: the matrix after epoch 1 takes its place when the "
               "epoch ends.")
    _words(counts, classes, None)
    _matrix_and_pictures(summary, counts, classes, lambda: (preds, None))


def _matrix_and_pictures(summary: catalog.RunSummary, counts: np.ndarray, classes: list[str],
                         read_predictions: Callable[[], tuple[predictions.Predictions | None, str | None]]) -> None:
    """The clickable matrix and, beside it, the chosen square's pictures (their predictions read only then)."""
    chosen = matrix.chosen_cell(PREFIX, classes)
    chart_col, pictures_col = st.columns([3, 2])
    with chart_col:
        matrix.show_matrix(PREFIX, counts, classes, chosen, compact=True)
    if chosen is None:
        return
    preds, problem = read_predictions()
    with pictures_col:
        if problem:
            st.warning(plain(problem))
        elif preds is not None:
            images, _, reason = loaders.run_images(summary.config, preds)
            # Two a row, the probability bars behind a button: the column beside the live matrix is narrow.
            matrix.show_cell(PREFIX, preds, classes, chosen, images, reason, bars="popover", columns=2)


def _previous(summary: catalog.RunSummary, epochs: list[int], shape: tuple[int, ...]) -> tuple[int, np.ndarray] | None:
    """The epoch before the newest one and its counts, when it has a readable file of the same classes."""
    if len(epochs) < 2:
        return None
    counts, _ = loaders.epoch_confusion(summary.path, epochs[-2])
    return (epochs[-2], counts) if counts is not None and counts.shape == shape else None


def _words(counts: np.ndarray, classes: list[str], previous: tuple[int, np.ndarray] | None) -> None:
    # Both directions added up (cats taken for dogs plus dogs taken for cats), the same ranking as the
    # Errors page's "Most mixed-up pairs", so the pair named here is the first one listed there.
    pairs = mistakes.confused_pairs(counts, 1)
    if not pairs:
        st.markdown("Right now it mixes up no two classes: every validation picture is right.")
        return
    top = pairs[0]
    a, b = plain(classes[top.a]), plain(classes[top.b])
    sentence = f"Right now it mixes up **{a}** and **{b}** most: {plural(top.total, 'time')}"
    if previous is not None:
        epoch_before, counts_before = previous
        sentence += ", " + change_text(top.total, mistakes.pair_between(counts_before, top.a, top.b).total,
                                              epoch_before)
    st.markdown(sentence + ".")
    st.caption(f"{a} taken for {b}: {top.a_as_b} · {b} taken for {a}: {top.b_as_a}")
