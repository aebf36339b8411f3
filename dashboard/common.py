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
