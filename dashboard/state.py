"""Who is looking at what: the runs folder, the one job manager, the run picker and its run's metrics.

Shared by every page; nothing here trains or computes metrics.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from core.jobs import JobManager
from core.rundir import catalog, layout
from core.rundir.state import LIVE_STATES, RunState
from dashboard.run_listing import run_labels
from dashboard.text import plain

RUN_KEY = "run_id"  # st.session_state key of the run being looked at


def by_mtime(path: Path) -> int:
    """A cache key for a file: its modification time (0 when missing), so a changed file is read again.

    The cached functions take it as an ordinary argument: Streamlit leaves "_"-prefixed ones out of the key.
    """
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def runs_dir() -> Path:
    return catalog.default_runs_dir()


@st.cache_resource
def _job_manager(folder: str) -> JobManager:
    return JobManager(folder)


def job_manager() -> JobManager:
    """The one job manager of this server, shared by every browser session and tab."""
    return _job_manager(str(runs_dir()))


def run_summaries() -> list[catalog.RunSummary]:
    return catalog.list_runs(runs_dir())


def sidebar() -> None:
    """The run picker: which run the Train (live view), Errors, Learning dynamics and Gallery pages look at,
    and Compare's run A."""
    summaries = [s for s in run_summaries() if s.state != RunState.DAMAGED]
    with st.sidebar:
        if not summaries:
            st.caption("No runs yet: start one on the Train page.")
            return
        ids = [s.run_id for s in summaries]
        labels = run_labels(summaries)  # a label also changes when a namesake appears
        current = st.session_state.get(RUN_KEY)
        if current not in ids:
            st.session_state[RUN_KEY] = ids[0]  # newest first
        resend_if_relabelled(RUN_KEY, labels[st.session_state[RUN_KEY]])
        st.selectbox("Run", ids, key=RUN_KEY, format_func=labels.get,
                     help="The training run shown on the Train, Errors, Learning dynamics and Gallery pages; "
                          "run A on the Compare page.")


def resend_if_relabelled(key: str, label: str) -> None:
    """Make the browser show `label` for the option chosen in the keyed selectbox `key`.

    Call it just before the selectbox. The browser keeps the label it last showed (a selectbox's value
    travels as its label) and replaces it only when the server sets the value, so a run that finished
    would still read "running" there (or lack the time a namesake's arrival added to its name). Setting
    the same option again through session state sends the new label; only when the label changed, so
    other reruns leave the widget alone.
    """
    sent_key = f"_{key}_label"  # the label this session's browser was last given
    if st.session_state.get(sent_key) != label:
        st.session_state[key] = st.session_state[key]
    st.session_state[sent_key] = label


def selected_run() -> catalog.RunSummary | None:
    run_id = st.session_state.get(RUN_KEY)
    if not run_id:
        return None
    try:
        return catalog.summarize_run(catalog.run_path(runs_dir(), run_id))
    except catalog.RunError:
        return None


NO_RUN_YET = "There is no run to look at yet: start one on the Train page, then come back here."


def selected_run_or_stop() -> catalog.RunSummary:
    """The sidebar's run; without any, one sentence and the page stops there."""
    selected = selected_run()
    if selected is None:
        st.info(NO_RUN_YET)
        st.stop()
    return selected


def show_selected_run(view: Callable[[catalog.RunSummary], None], refresh_s: float) -> None:
    """Draw `view(summary)` for the sidebar's run; while the run trains, in a fragment re-run every
    `refresh_s` seconds on a fresh summary (only the view re-runs). Without any run, one sentence."""
    selected = selected_run_or_stop()
    if selected.state in LIVE_STATES:
        st.fragment(_refreshed_view, run_every=refresh_s)(view, selected.run_id)
    else:
        view(selected)


def _refreshed_view(view: Callable[[catalog.RunSummary], None], run_id: str) -> None:
    try:
        summary = catalog.summarize_run(catalog.run_path(runs_dir(), run_id))
    except catalog.RunError as exc:  # deleted or damaged while the page was open
        st.error(plain(exc))
        st.stop()
    view(summary)


def select_run(run_id: str) -> None:
    """Point the picker at `run_id` (e.g. the run just started)."""
    st.session_state[RUN_KEY] = run_id


def delete_run(run_id: str) -> None:
    """Delete a run; a waiting one leaves the queue first. Raises RunError (one sentence) when refused."""
    job_manager().delete(run_id)
    if st.session_state.get(RUN_KEY) == run_id:
        del st.session_state[RUN_KEY]  # the picker falls back to the newest run


@st.cache_data(max_entries=64, show_spinner=False)
def _metrics(path: str, size: int, mtime_ns: int) -> list[dict]:
    return catalog.read_metrics(Path(path))


def metrics_version(run_dir: Path) -> tuple[int, int]:
    """(size, modification time) of a run's metrics file, (0, 0) when it has none: a cache key for what is
    drawn from the metrics."""
    try:
        stat = layout.metrics(run_dir).stat()
    except OSError:
        return 0, 0
    return stat.st_size, stat.st_mtime_ns


def run_metrics(run_dir: Path) -> list[dict]:
    """A run's metric records, read again only when its metrics file changed (cheap to call every second)."""
    version = metrics_version(run_dir)
    return _metrics(str(run_dir), *version) if version != (0, 0) else []
