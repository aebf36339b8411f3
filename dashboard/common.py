"""What every page shares: the runs folder, the one job manager, the run picker, cached data, images.

Pages import from here instead of repeating blocks; nothing here trains or computes metrics.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from core import runs
from core.data import Dataset, load_dataset
from core.jobs import JobManager

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
# Training, runs and data (Train, Runs and Data pages): data-source picker, metrics, run actions
# =============================================================================================
from core import views  # noqa: E402

SOURCE_KINDS = {  # what the data-source picker offers, in plain words
    "cifar10": "CIFAR-10 photos",
    "synthetic": "Synthetic shapes (tiny, for a quick try)",
    "path": "My own folder or archive",
}


def source_picker(key: str, default: str, help_more: str = "") -> str:
    """Where the images come from (CIFAR-10, synthetic shapes or a path); returns the source text.

    `key` prefixes the widget keys (`<key>_kind`, `<key>_path`); `default` is used the first time.
    """
    kind_key, path_key = f"{key}_kind", f"{key}_path"
    if kind_key not in st.session_state:
        st.session_state[kind_key] = default if default in views.KEYWORD_SOURCES else "path"
        st.session_state[path_key] = "" if default in views.KEYWORD_SOURCES else default
    kind = st.radio(
        "Images", list(SOURCE_KINDS), format_func=SOURCE_KINDS.get, key=kind_key,
        help="CIFAR-10 is the classic set of 60,000 small photos in 10 classes (downloaded once, about "
             "170 MB). Synthetic shapes are made up on the spot and learn in seconds: good for a first "
             "try. Your own images need a folder (or .zip/.tar.gz) with train/ and test/ inside, one "
             "sub-folder per class." + help_more)
    if kind != "path":
        return kind
    path = st.text_input(
        "Folder or archive", key=path_key, placeholder="/home/me/pictures or /home/me/pictures.zip",
        help="The full path on the computer running this dashboard: a folder (or .zip/.tar.gz archive) "
             "holding train/<class name>/ and test/<class name>/ folders of pictures.")
    return path.strip()


@st.cache_data(max_entries=64, show_spinner=False)
def _metrics(path: str, _size: int, _mtime_ns: int) -> list[dict]:
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
    manager = job_manager()
    if (manager.position(run_id) or 0) > 0:
        manager.stop(run_id)  # a fresh queued run is deleted by this; a queued resume goes back to stopped
    if runs.run_path(runs_dir(), run_id).is_dir():
        runs.delete_run(runs_dir(), run_id)
    if st.session_state.get(RUN_KEY) == run_id:
        del st.session_state[RUN_KEY]  # the picker falls back to the newest run
