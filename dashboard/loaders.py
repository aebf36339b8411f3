"""Cached reads for the pages: a run's predictions, per-epoch counts and stack, model, images and class names.

Each is read from disk once per version of its file (`state.by_mtime`), so pages can ask every rerun.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from core.analysis import dynamics, features, kfold, label_issues, mistakes, pictures
from core.analysis.dynamics import EpochStack
from core.data import Dataset, ImageSet, load_dataset
from core.rundir import catalog, layout
from core.rundir.predictions import Predictions, PredictionsError, load_first_look, load_predictions, val_epochs
from core.training.device import resolve_device
from core.training.inference import Predictor, evaluated_checkpoint
from dashboard.state import by_mtime
from dashboard.text import plain
from dashboard.wording import no_predictions_message


@st.cache_resource(show_spinner="Loading images…", max_entries=4)
def dataset(source: str, data_dir: str = "") -> Dataset:
    """The decoded images of a data source, loaded once per server (they come from core's cache)."""
    return load_dataset(source, data_dir or None)


@st.cache_data(max_entries=32, show_spinner=False)
def _load_predictions(run_dir: str, split: str, epoch: int | None,
                      mtime_ns: int) -> tuple[Predictions | None, str | None]:
    # A damaged file's sentence is returned, not raised, so it is cached too and not re-read every rerun.
    try:
        return load_predictions(Path(run_dir), split, epoch), None
    except PredictionsError as exc:
        return None, str(exc)


def predictions(run_dir: Path, split: str = "test",
                epoch: int | None = None) -> tuple[Predictions | None, str | None]:
    """Saved predictions, or None with the sentence saying which file is damaged (None, None: not saved yet).

    Read from disk once per change of the run's predictions folder.
    """
    # Every prediction file is written by rename into the predictions folder, which bumps the folder's mtime.
    return _load_predictions(str(run_dir), split, epoch, by_mtime(layout.predictions_dir(run_dir)))


def predictions_or_stop(summary: catalog.RunSummary, split: str, preds: Predictions | None, problem: str | None,
                        prefix: str = "") -> Predictions:
    """`preds` as `predictions` gave them, or one sentence and the page stops: a warning naming the damaged
    file, else why the run has none yet. `which` starts the warning ("Run A: ") where two runs are shown."""
    if problem:
        st.warning(prefix + plain(problem))
        st.stop()
    if preds is None:
        st.info(no_predictions_message(summary, split))
        st.stop()
    return preds


@st.cache_data(max_entries=8, show_spinner=False)
def _oof_predictions(run_dir: str, mtime_ns: int) -> tuple[Predictions | None, str | None]:
    try:
        return kfold.load_oof(Path(run_dir)), None
    except PredictionsError as exc:
        return None, str(exc)


def oof_predictions(run_dir: Path) -> tuple[Predictions | None, str | None]:
    """The run's out-of-fold training predictions (core.analysis.kfold), like `predictions`: None with why, or (None, None)."""
    return _oof_predictions(str(run_dir), by_mtime(layout.predictions_dir(run_dir)))


def _split_predictions(run_dir: str, split: str, mtime_ns: int) -> Predictions | None:
    if split == "train":
        return _oof_predictions(run_dir, mtime_ns)[0]
    return _load_predictions(run_dir, "test", None, mtime_ns)[0]


@st.cache_data(max_entries=16, show_spinner=False)
def _label_issues(run_dir: str, split: str, ranking: str, mtime_ns: int) -> label_issues.LabelIssues | None:
    preds = _split_predictions(run_dir, split, mtime_ns)
    return None if preds is None else label_issues.find_label_issues(preds.probs, preds.labels, ranking)


def suspected_labels(run_dir: Path, ranking: str, split: str = "test") -> label_issues.LabelIssues | None:
    """Suspected label errors (core.analysis.label_issues) among the run's test pictures, or its training pictures
    ("train": the out-of-fold predictions), once per version of its predictions folder.

    None when the run has no usable predictions of that split (`predictions`/`oof_predictions` say why).
    """
    return _label_issues(str(run_dir), split, ranking, by_mtime(layout.predictions_dir(run_dir)))


@st.cache_data(max_entries=8, show_spinner=False)
def _first_look(run_dir: str, mtime_ns: int) -> tuple[Predictions | None, str | None]:
    try:
        return load_first_look(Path(run_dir)), None
    except PredictionsError as exc:
        return None, str(exc)


def first_look(run_dir: Path) -> tuple[Predictions | None, str | None]:
    """The validation predictions halfway through epoch 1 (core.rundir.predictions.load_first_look), read once per
    version of their file; None with the sentence naming a damaged file."""
    return _first_look(str(run_dir), by_mtime(layout.val_first_look(run_dir)))


@st.cache_data(max_entries=64, show_spinner=False)
def _epoch_confusion(run_dir: str, epoch: int, mtime_ns: int) -> tuple[np.ndarray | None, str | None]:
    # Keyed by the epoch file's own time, not the folder's: a new epoch leaves older epochs' entries valid.
    try:
        preds = load_predictions(Path(run_dir), "val", epoch)
    except PredictionsError as exc:
        return None, str(exc)
    if preds is None:
        return None, None
    return mistakes.confusion_counts(preds.labels, preds.pred, preds.probs.shape[1]), None


def epoch_confusion(run_dir: Path, epoch: int) -> tuple[np.ndarray | None, str | None]:
    """(C, C) validation counts after `epoch`, read once per version of that epoch's file.

    None with the sentence naming a damaged file; (None, None) when the epoch has no file (yet).
    """
    return _epoch_confusion(str(run_dir), epoch, by_mtime(layout.val_epoch(run_dir, epoch)))


@st.cache_data(max_entries=256, show_spinner=False)
def _val_epoch(run_dir: str, epoch: int, mtime_ns: int, labels_mtime_ns: int) -> tuple[Predictions | None, str | None]:
    # One entry per version of one epoch's file (and of the labels it is matched to): a new epoch reads one file.
    return dynamics.read_epoch(Path(run_dir), epoch)


@st.cache_data(max_entries=8, show_spinner="Reading the epochs…")
def _epoch_stack(run_dir: str, versions: tuple[tuple[int, int], ...], labels_mtime_ns: int) -> EpochStack:
    return dynamics.build_stack((epoch, *_val_epoch(run_dir, epoch, mtime_ns, labels_mtime_ns))
                                for epoch, mtime_ns in versions)


def epoch_stack(run_dir: Path) -> EpochStack:
    """Every saved validation epoch of a run, stacked; damaged epochs are in its `skipped`, with their reason.

    Each epoch file is read once per version of it, so a training run's new epoch costs one read.
    """
    labels_mtime = by_mtime(layout.val_labels(run_dir))
    versions = tuple((epoch, by_mtime(layout.val_epoch(run_dir, epoch))) for epoch in val_epochs(run_dir))
    return _epoch_stack(str(run_dir), versions, labels_mtime)


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def _predictor(run_dir: str, checkpoint: str, mtime_ns: int) -> Predictor:
    return Predictor.from_run(Path(run_dir), resolve_device("auto"), checkpoint)


def predictor_checkpoint(run_dir: Path) -> str | None:
    """The checkpoint the saved test predictions came from: best after early stopping, else last."""
    return evaluated_checkpoint(run_dir)  # core owns the rule: the map uses the same checkpoint


def predictor(run_dir: Path, checkpoint: str) -> Predictor:
    """The run's model ready to classify new images, loaded once per checkpoint file version."""
    return _predictor(str(run_dir), checkpoint, by_mtime(layout.checkpoint(run_dir, checkpoint)))


@st.cache_resource(ttl=60, max_entries=4, show_spinner="Loading images…")
def _dataset_or_reason(source: str, data_dir: str) -> tuple[Dataset | None, str | None]:
    # A failure is remembered for a minute too, so a missing source is not retried on every click.
    try:
        return dataset(source, data_dir), None
    except (ValueError, OSError) as exc:
        return None, str(exc)


def _data_classes(config: dict) -> tuple[str, ...] | None:
    """The class names of a run's data source (for `class_names`), or None when it cannot be loaded here."""
    data, _ = pictures.run_dataset(config, _dataset_or_reason)
    return data.classes if data is not None else None


def run_images(config: dict, preds: Predictions) -> tuple[ImageSet | None, tuple[str, ...] | None, str | None]:
    """The split the predictions index into, the source's class names, or why the images are unavailable."""
    data, reason = pictures.run_dataset(config, _dataset_or_reason)
    if data is None:
        return None, None, reason
    split, reason = pictures.evaluated_split(data, preds)
    return split, data.classes, reason


def class_names(summary: catalog.RunSummary, num_classes: int, data_classes: tuple[str, ...] | None = None) -> list[str]:
    """Class names of a run (core.analysis.pictures.class_names), its data loaded through the cache when needed."""
    return pictures.class_names(
        summary, num_classes, lambda: data_classes if data_classes is not None else _data_classes(summary.config))


@st.cache_data(max_entries=8, show_spinner=False)
def _feature_set(run_dir: str, kind: str, mtime_ns: int) -> tuple[features.FeatureSet | None, str | None]:
    try:
        return (features.load_map(Path(run_dir)) if kind == "map" else features.load_features(Path(run_dir), kind)), None
    except PredictionsError as exc:
        return None, str(exc)


def feature_set(run_dir: Path, kind: str) -> tuple[features.FeatureSet | None, str | None]:
    """The test map ("map") or a split's features ("test", "train"), read once per version of its file;
    None with a sentence when damaged, (None, None) when the run has none."""
    path = layout.feature_map(run_dir) if kind == "map" else layout.features(run_dir, kind)
    return _feature_set(str(run_dir), kind, by_mtime(path))


def train_images(config: dict) -> ImageSet | None:
    """The training pictures of a run's data source (its saved training features' index points into them), if here."""
    data, _ = pictures.run_dataset(config, _dataset_or_reason)
    return data.train if data is not None else None
