"""What every page shares: the runs folder, the one job manager, the run picker, cached data, images.

Pages import from here instead of repeating blocks; nothing here trains or computes metrics.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import streamlit as st

from core import runs
from core.data import Dataset, load_dataset
from core.jobs import JobManager
from dashboard.text import plain

RUN_KEY = "run_id"  # st.session_state key of the run being looked at


def runs_dir() -> Path:
    return runs.default_runs_dir()


@st.cache_resource
def _job_manager(folder: str) -> JobManager:
    return JobManager(folder)


def job_manager() -> JobManager:
    """The one job manager of this server, shared by every browser session and tab."""
    return _job_manager(str(runs_dir()))


def run_summaries() -> list[runs.RunSummary]:
    return runs.list_runs(runs_dir())


def run_label(summary: runs.RunSummary) -> str:
    return f"{summary.name} · {summary.state}" if summary.name == summary.run_id else \
        f"{summary.name} · {summary.state} · {summary.run_id}"


def sidebar() -> None:
    """The run picker: which run the Train (live view), Errors and Gallery pages look at."""
    summaries = [s for s in run_summaries() if s.state != "damaged"]
    with st.sidebar:
        if not summaries:
            st.caption("No runs yet: start one on the Train page.")
            return
        ids = [s.run_id for s in summaries]
        labels = {s.run_id: run_label(s) for s in summaries}
        current = st.session_state.get(RUN_KEY)
        if current not in ids:
            st.session_state[RUN_KEY] = ids[0]  # newest first
        st.selectbox("Run", ids, key=RUN_KEY, format_func=labels.get,
                     help="The training run shown on the Train, Errors and Gallery pages.")


def selected_run() -> runs.RunSummary | None:
    run_id = st.session_state.get(RUN_KEY)
    if not run_id:
        return None
    try:
        return runs.summarize_run(runs.run_path(runs_dir(), run_id))
    except runs.RunError:
        return None


def select_run(run_id: str) -> None:
    """Point the picker at `run_id` (e.g. the run just started)."""
    st.session_state[RUN_KEY] = run_id


@st.cache_resource(show_spinner="Loading images…", max_entries=4)
def dataset(source: str, data_dir: str = "") -> Dataset:
    """The decoded images of a data source, loaded once per server (they come from core's cache)."""
    return load_dataset(source, data_dir or None)


def enlarge(image: np.ndarray, scale: int = 4) -> np.ndarray:
    """Upscale a small (H, W, 3) uint8 image by pixel repetition, so it stays crisp when shown large."""
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


# =============================================================================================
# Error analysis (Errors and Gallery pages): cached predictions, class names, images, tiles
# =============================================================================================
from core import analysis  # noqa: E402
from core.data import ImageSet  # noqa: E402
from core.inference import Predictor  # noqa: E402

TILES_PER_PAGE = 24  # images drawn at once: a page stays quick to send even for a 10,000-image test set
TILE_COLUMNS = 6
TILE_SCALE = 4  # 32 px -> 128 px on screen


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


@st.cache_data(max_entries=32, show_spinner=False)
def _load_predictions(run_dir: str, split: str, epoch: int | None,
                      stamp: int) -> tuple[runs.Predictions | None, str | None]:
    # `stamp` (a file time) is part of the cache key: a leading underscore would leave it out.
    # A damaged file's sentence is returned, not raised, so it is cached too and not re-read every rerun.
    try:
        return runs.load_predictions(Path(run_dir), split, epoch), None
    except runs.PredictionsError as exc:
        return None, str(exc)


def predictions(run_dir: Path, split: str = "test",
                epoch: int | None = None) -> tuple[runs.Predictions | None, str | None]:
    """Saved predictions, or None with the sentence saying which file is damaged (None, None: not saved yet).

    Read from disk once per change of the run's predictions folder.
    """
    # Every prediction file is written by rename into predictions/, which bumps the folder's mtime.
    return _load_predictions(str(run_dir), split, epoch, _mtime_ns(run_dir / "predictions"))


@st.cache_data(max_entries=64, show_spinner=False)
def _epoch_confusion(run_dir: str, epoch: int, stamp: int) -> tuple[np.ndarray | None, str | None]:
    # Keyed by the epoch file's own time, not the folder's: a new epoch leaves older epochs' entries valid.
    try:
        preds = runs.load_predictions(Path(run_dir), "val", epoch)
    except runs.PredictionsError as exc:
        return None, str(exc)
    if preds is None:
        return None, None
    return analysis.confusion_counts(preds.labels, preds.pred, preds.probs.shape[1]), None


def epoch_confusion(run_dir: Path, epoch: int) -> tuple[np.ndarray | None, str | None]:
    """(C, C) validation counts after `epoch`, read once per version of that epoch's file.

    None with the sentence naming a damaged file; (None, None) when the epoch has no file (yet).
    """
    return _epoch_confusion(str(run_dir), epoch, _mtime_ns(runs.val_predictions_path(run_dir, epoch)))


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def _predictor(run_dir: str, which: str, stamp: int) -> Predictor:
    from core.device import resolve_device

    return Predictor.from_run(Path(run_dir), resolve_device("auto"), which)


def predictor_checkpoint(run_dir: Path) -> str | None:
    """The checkpoint the saved test predictions came from: best after early stopping, else last."""
    test_summary = runs.read_json(run_dir / "test_summary.json") or {}
    order = ("best", "last") if test_summary.get("early_stopped") else ("last", "best")
    return next((w for w in order if runs.checkpoint_path(run_dir, w).is_file()), None)


def predictor(run_dir: Path, which: str) -> Predictor:
    """The run's model ready to classify new images, loaded once per checkpoint file version."""
    return _predictor(str(run_dir), which, _mtime_ns(runs.checkpoint_path(run_dir, which)))


@st.cache_resource(ttl=60, max_entries=4, show_spinner="Loading images…")
def _dataset_or_reason(source: str, data_dir: str) -> tuple[Dataset | None, str | None]:
    # A failure is remembered for a minute too, so a missing source is not retried on every click.
    try:
        return dataset(source, data_dir), None
    except (ValueError, OSError) as exc:
        return None, str(exc)


def _run_dataset(config: dict) -> tuple[Dataset | None, str | None]:
    """The dataset a run was trained on, or why it cannot be loaded here."""
    source = config.get("data")
    if not isinstance(source, str) or not source:
        return None, "The run's settings do not say which data it was trained on."
    data, reason = _dataset_or_reason(source, str(config.get("data_dir") or ""))
    if data is None:
        return None, f"The images of '{source}' cannot be loaded on this machine: {reason}"
    return data, None


def data_classes(config: dict) -> tuple[str, ...] | None:
    """The class names of a run's data source (for `class_names`), or None when it cannot be loaded here."""
    data, _ = _run_dataset(config)
    return data.classes if data is not None else None


def run_images(config: dict, preds: runs.Predictions) -> tuple[ImageSet | None, tuple[str, ...] | None, str | None]:
    """The split the predictions index into, the source's class names, or why the images are unavailable."""
    data, reason = _run_dataset(config)
    if data is None:
        return None, None, reason
    source = config["data"]
    split = data.test if preds.split == "test" else data.train  # validation pictures are held out of train
    index_ok = len(preds.index) == 0 or (preds.index.min() >= 0 and preds.index.max() < len(split))
    if not index_ok or not np.array_equal(split.labels[preds.index], preds.labels):
        return None, data.classes, (f"The images of '{source}' on this machine are not the ones this run "
                                    "was evaluated on (the data changed since), so they are not shown.")
    return split, data.classes, None


@st.cache_data(max_entries=16, show_spinner=False)
def _checkpoint_classes(path: str, stamp: int) -> object:
    try:
        return runs.load_checkpoint(Path(path)).get("classes")
    except runs.RunError:
        return None


def _usable_names(candidate: object, num_classes: int) -> list[str] | None:
    """`candidate` as class names when it is `num_classes` different texts, else None."""
    if not isinstance(candidate, (list, tuple)):
        return None
    names = list(candidate)
    if len(names) != num_classes or not all(isinstance(n, str) for n in names) or len(set(names)) != num_classes:
        return None  # the matrix and the filters look classes up by name: names must tell them apart
    return names


def _name_sources(run_dir: Path, data_classes: tuple[str, ...] | None) -> Iterator[object]:
    """Where a run's class names may come from, best first; a checkpoint is opened only when reached."""
    per_class = (runs.read_json(run_dir / "test_summary.json") or {}).get("per_class_accuracy")
    yield list(per_class) if isinstance(per_class, dict) else None
    yield data_classes
    for which in ("last", "best"):
        path = runs.checkpoint_path(run_dir, which)
        yield _checkpoint_classes(str(path), _mtime_ns(path)) if path.is_file() else None


def class_names(run_dir: Path, num_classes: int, data_classes: tuple[str, ...] | None) -> list[str]:
    """Class names of a run: from its test summary, its data, its checkpoint, or numbered as a last resort.

    Any of these files may be damaged or foreign (per_class_accuracy: 5, a list, names that are
    numbers): a source that does not give `num_classes` different names is skipped.
    """
    for candidate in _name_sources(run_dir, data_classes):
        names = _usable_names(candidate, num_classes)
        if names:
            return names
    return [f"class {k}" for k in range(num_classes)]


def tile_caption(true_name: str, pred_name: str, confidence: float) -> str:
    """An image's caption (Markdown, as st.image and st.caption render it): class names shown as typed."""
    return f"True: {plain(true_name)} · Predicted: {plain(pred_name)} · {confidence:.0%} sure"


def probability_bars(probs_row: np.ndarray, classes: list[str], k: int = 3) -> None:
    """The k most likely classes of one image as labelled bars."""
    for c, p in analysis.top_k(probs_row, k):
        st.progress(min(max(p, 0.0), 1.0), text=f"{plain(classes[c])}: {p:.1%}")


def prediction_tiles(preds: runs.Predictions, positions: np.ndarray, images: ImageSet | None,
                     classes: list[str], *, bars: str = "inline") -> None:
    """A grid of predictions: enlarged image, caption (true, predicted, confidence), top-3 bars.

    bars: "inline" draws the bars under each image; "popover" puts them behind a small button.
    Without images (data not on this machine) the tiles show the caption alone.
    """
    for row_start in range(0, len(positions), TILE_COLUMNS):
        columns = st.columns(TILE_COLUMNS)
        for column, pos in zip(columns, positions[row_start:row_start + TILE_COLUMNS]):
            true_c, pred_c = int(preds.labels[pos]), int(preds.pred[pos])
            caption = tile_caption(classes[true_c], classes[pred_c], float(preds.probs[pos, pred_c]))
            with column:
                if images is not None:
                    st.image(enlarge(images.images[preds.index[pos]], TILE_SCALE), caption=caption)
                else:
                    st.caption(caption)
                if bars == "inline":
                    probability_bars(preds.probs[pos], classes)
                else:
                    with st.popover("Top 3", help="The three classes the model found most likely for this image."):
                        probability_bars(preds.probs[pos], classes)


def page_picker(n_items: int, key: str, label: str = "Page") -> int:
    """A page number box when there is more than one page of tiles; returns the 1-based page."""
    pages = analysis.page_count(n_items, TILES_PER_PAGE)
    if pages == 1:
        return 1
    if st.session_state.get(key, 1) > pages:
        st.session_state[key] = pages  # the list shrank (new filters, a refresh): stay in range
    column, _ = st.columns([1, 4])
    return int(column.number_input(f"{label} (of {pages})", min_value=1, max_value=pages, step=1, key=key,
                                   help=f"{TILES_PER_PAGE} images are shown at a time; pick which group to see."))


def no_predictions_message(summary: runs.RunSummary, split: str = "test") -> str:
    """One sentence saying why a run has no saved predictions of `split` ("test" or "val") yet."""
    if split == "val":
        if summary.config.get("val_fraction") == 0:
            return ("This run kept no validation images (its validation share is 0), so only the final test "
                    "set can be shown.")
        return ("This run has no validation results yet: they are saved at the end of every epoch, so check "
                "back after the first one.")
    return {
        "queued": "This run is waiting to start: its test results are saved when its training finishes.",
        "running": "This run is still training: its test results are saved when it finishes (the validation "
                   "set shows the mistakes after each epoch meanwhile).",
        "failed": "This run failed before its final test, so it has no test results; the Runs page shows what "
                  "went wrong.",
        "stopped": "This run was stopped before its final test, so it has no test results; resume it on the "
                   "Runs page to finish.",
        "interrupted": "This run ended before its final test, so it has no test results; resume it on the Runs "
                       "page to finish.",
    }.get(summary.state, "This run has no saved test results (they may have been deleted), so there is nothing "
                         "to show.")


# =============================================================================================
# Training, runs and data (Train, Runs and Data pages): data-source picker, metrics, run actions
# =============================================================================================
from collections.abc import Callable  # noqa: E402

from core.config import KEYWORD_SOURCES  # noqa: E402

SOURCE_KINDS = {  # what the data-source picker offers, in plain words
    "cifar10": "CIFAR-10 photos",
    "synthetic": "Synthetic shapes (tiny, for a quick try)",
    "path": "My own folder or archive",
}


def source_picker(key: str, default: str | Callable[[], str], persist_state: str | None = None) -> str:
    """Where the images come from (CIFAR-10, synthetic shapes or a path); returns the source text.

    `key` prefixes the widget keys (`<key>_kind`, `<key>_path`); `default` (or what it returns, when
    it is a function) is used the first time only; `persist_state` as for st.radio.
    """
    kind_key, path_key = f"{key}_kind", f"{key}_path"
    if kind_key not in st.session_state:
        default = default() if callable(default) else default
        st.session_state[kind_key] = default if default in KEYWORD_SOURCES else "path"
        st.session_state[path_key] = "" if default in KEYWORD_SOURCES else default
    st.radio(
        "Images", list(SOURCE_KINDS), format_func=SOURCE_KINDS.get, key=kind_key, persist_state=persist_state,
        help="CIFAR-10 is the classic set of 60,000 small photos in 10 classes (downloaded once, about "
             "170 MB). Synthetic shapes are made up on the spot and learn in seconds: good for a first "
             "try. Your own images need a folder (or .zip/.tar.gz) with train/ and test/ inside, one "
             "sub-folder per class.")
    if st.session_state[kind_key] == "path":
        st.text_input(
            "Folder or archive", key=path_key, placeholder="/home/me/pictures or /home/me/pictures.zip",
            persist_state=persist_state,
            help="The full path on the computer running this dashboard: a folder (or .zip/.tar.gz archive) "
                 "holding train/<class name>/ and test/<class name>/ folders of pictures.")
    return picked_source(key)


def picked_source(key: str) -> str:
    """The source chosen in `source_picker(key, ...)`, also readable from a button callback."""
    kind = st.session_state.get(f"{key}_kind")
    if kind != "path":
        return kind or ""
    return str(st.session_state.get(f"{key}_path") or "").strip()


@st.cache_data(max_entries=64, show_spinner=False)
def _metrics(path: str, size: int, mtime_ns: int) -> list[dict]:
    # size and mtime_ns are part of the cache key (a leading "_" would leave them out of it).
    return runs.read_metrics(Path(path))


def run_metrics(run_dir: Path) -> list[dict]:
    """A run's metric records, read again only when metrics.jsonl changed (cheap to call every second)."""
    try:
        stat = (run_dir / "metrics.jsonl").stat()
    except OSError:
        return []
    return _metrics(str(run_dir), stat.st_size, stat.st_mtime_ns)


def delete_run(run_id: str) -> None:
    """Delete a run; a waiting one leaves the queue first. Raises RunError (one sentence) when refused."""
    job_manager().delete(run_id)
    if st.session_state.get(RUN_KEY) == run_id:
        del st.session_state[RUN_KEY]  # the picker falls back to the newest run
