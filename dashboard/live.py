"""The live view of one run (Train page): progress, Stop/Resume, learning rate, learning curves and,
from the first epoch on, the newest validation confusion matrix (dashboard/live_mistakes.py).

Watching must not slow the training it shows, and on a 2-core laptop every CPU-second the server or the
browser spends drawing is taken from the training. So `show(summary)` splits the view by how often its
parts change:
- progress, numbers and curves are drawn in an `st.fragment` that reruns every LIVE_REFRESH_S seconds
  while the run is queued or running (not at all otherwise); the curves' charts are made once per version
  of the metrics file, so a refresh only sends them again;
- the newest epoch's matrix, its words and the chosen square's pictures are drawn with the page, so they
  are redrawn only when a new epoch's predictions appear (the fragment then reruns the page), when the run
  starts or ends, or when a square is clicked. Redrawing 24 pictures every refresh cost the browser more
  than everything else on the page.
Each refresh only reads the run folder (its status; its metrics only when they changed; the names in its
predictions folder), never the training's memory.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.analysis.curves import current_lr, latest, live_curves
from core.rundir import catalog, files, lifecycle
from core.rundir.progress import run_progress
from core.rundir.state import LIVE_STATES, RunState
from dashboard import live_mistakes, state
from dashboard.charts import curve_chart, vega_spec
from dashboard.text import plain
from dashboard.wording import MISSING, data_label, plural, progress_line, queue_text

LIVE_REFRESH_S = 1.5
MESSAGE_KEY = "live_message"  # a one-sentence refusal from Stop/Resume, shown on the next draw


def show(summary: catalog.RunSummary) -> None:
    """Draw the live view of `summary`'s run; it refreshes itself only while the run is live."""
    live = summary.state in LIVE_STATES
    fragment = st.fragment(_view, run_every=LIVE_REFRESH_S if live else None)
    fragment(summary.run_id, summary.state, live_mistakes.newest_epoch(summary.path))
    live_mistakes.show(summary)


def _view(run_id: str, drawn_state: RunState, drawn_epoch: int | None) -> None:
    try:
        path = catalog.run_path(state.runs_dir(), run_id)
    except catalog.RunError as exc:  # replaced by a link while the page was open
        st.error(plain(exc))
        return
    if not path.is_dir():
        st.info("This run no longer exists (it was deleted); pick another one in the sidebar.")
        return
    summary = catalog.summarize_run(path)
    if summary.state != drawn_state:
        # Queued to running, or ended: redraw the whole page, so the sidebar's run label says the same as this
        # view and the refresh timer starts or stops.
        st.rerun()
    if live_mistakes.newest_epoch(path) != drawn_epoch:
        st.rerun()  # a new epoch's matrix: the page draws it, with its words and the chosen square's pictures
    metrics = state.run_metrics(path)
    _header(summary)
    _actions(summary)
    _state_message(summary)
    progress = run_progress(summary.status, summary.state)
    st.progress(progress.fraction, text=plain(progress_line(progress)))  # its numbers come from status.json
    _numbers(summary, metrics)
    _charts(path)


# ---------------------------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------------------------

def _header(summary: catalog.RunSummary) -> None:
    st.subheader(plain(summary.name))
    details = [summary.state, summary.model or "?", data_label(summary.data)]
    if summary.device:
        details.append(f"on {summary.device}")
    st.caption(" · ".join(plain(d) for d in details))  # model, data path, device: from the run's files


def _actions(summary: catalog.RunSummary) -> None:
    position = state.job_manager().position(summary.run_id)
    elsewhere = summary.state == RunState.RUNNING and position is None
    # A row of buttons as wide as their words (columns of a fixed share cut them to "S…" on a laptop screen).
    row = st.container(horizontal=True)
    row.button("Stop", key="live_stop", on_click=_stop, args=(summary.run_id,), icon=":material/stop:",
               disabled=summary.state not in LIVE_STATES or elsewhere,
               help="Stop training now. The run keeps what it learned so far and can be resumed later."
                    if not elsewhere else
                    "This run was started outside this dashboard (e.g. from the command line): stop it there.")
    if lifecycle.restart_refusal(summary) is None:  # ended before its first checkpoint: nothing to resume
        row.button("Start again", key="live_restart", on_click=_restart, args=(summary.run_id,),
                   icon=":material/restart_alt:",
                   help="Train this run again from the start with the same settings (it stopped before "
                        "saving anything it could carry on from).")
    else:
        row.button("Resume", key="live_resume", on_click=_resume, args=(summary.run_id,), icon=":material/play_arrow:",
                   disabled=lifecycle.resume_refusal(summary) is not None,
                   help="Carry on training a stopped or interrupted run from where it left off, up to its "
                        "planned number of epochs.")
    message = st.session_state.pop(MESSAGE_KEY, None)
    if message:
        st.error(plain(message))


def _stop(run_id: str) -> None:
    _act(state.job_manager().stop, run_id, "Stopping the run")


def _resume(run_id: str) -> None:
    _act(state.job_manager().resume, run_id, "Resuming the run")


def _restart(run_id: str) -> None:
    _act(state.job_manager().restart, run_id, "Starting the run again")


def _act(action, run_id: str, words: str) -> None:
    """Call the job manager's `action`; a refusal or a runs folder that cannot be written (read-only, full)
    becomes the one sentence shown on the next draw."""
    try:
        action(run_id)
    except catalog.RunError as exc:
        st.session_state[MESSAGE_KEY] = str(exc)
    except OSError as exc:
        st.session_state[MESSAGE_KEY] = files.action_error_sentence(exc, words)


def _state_message(summary: catalog.RunSummary) -> None:
    if summary.state == RunState.QUEUED:
        st.info(queue_text(state.job_manager().position(summary.run_id)))
    elif summary.state in (RunState.FAILED, RunState.INTERRUPTED, RunState.DAMAGED) and summary.error:
        st.error(plain(summary.error))
    elif summary.state == RunState.STOPPED:
        st.info(f"Stopped after {plain(summary.epoch)} of {plain(summary.epochs)} epochs; press Resume to carry on.")
    elif summary.state == RunState.PRUNED:
        st.info(f"Pruned after {plain(summary.epoch)} of {plain(summary.epochs)} epochs: its sweep's pruner stopped "
                "it because its validation accuracy lagged behind the sweep's other trials.")


def _numbers(summary: catalog.RunSummary, metrics: list[dict]) -> None:
    lr = current_lr(metrics)
    loss = latest(metrics, "train", "loss")
    val_acc = latest(metrics, "val", "val_acc")
    test = summary.test_acc
    row = st.container(horizontal=True, gap="medium")  # each as wide as its words; they wrap on a narrow screen
    row.metric("Learning rate", f"{lr:.3g}" if lr is not None else MISSING, width="content",
               help="How big a step the training takes right now; most recipes lower it as training goes on.")
    row.metric("Training loss", f"{loss:.3f}" if loss is not None else MISSING, width="content",
               help="How wrong the model is on the pictures it learns from (lower is better).")
    row.metric("Validation accuracy", f"{val_acc:.1%}" if val_acc is not None else MISSING, width="content",
               help="Share of held-back pictures the model gets right, measured after each epoch.")
    row.metric("Test accuracy", f"{test:.1%}" if test is not None else MISSING, width="content",
               help="Share of the separate test pictures the model gets right, measured once at the end.")


def _charts(path: Path) -> None:
    controls = st.container(horizontal=True, vertical_alignment="center", gap="medium")
    smoothing = controls.slider(
        "Smoothing", 0.0, 0.99, 0.6, 0.01, key="live_smoothing", width=220,
        help="Evens out the jumpy training curve so the trend is easier to see (0 = raw values). "
             "The faint line behind it always shows the raw values.")
    log_loss = controls.toggle("Loss on a log scale", key="live_log_loss",
                               help="Spreads out small loss values so late progress stays visible.")
    loss, accuracy, points = _curve_specs(str(path), state.metrics_version(path), smoothing, log_loss)
    st.caption(f"{plural(points[0], 'training point')} and {plural(points[1], 'validation point')} so far.")
    if loss is None:
        st.info("The curves appear after the first few training steps.")
        return
    st.vega_lite_chart(loss, key="live_loss_chart", width="stretch")
    st.vega_lite_chart(accuracy, key="live_acc_chart", width="stretch")


@st.cache_data(max_entries=16, show_spinner=False)
def _curve_specs(run_dir: str, version: tuple[int, int], smoothing: float,
                 log_loss: bool) -> tuple[dict | None, dict | None, tuple[int, int]]:
    """The loss and accuracy charts' specs (None before the first points) and the number of training and
    validation points, made once per version of the metrics file: a refresh draws them again as they are."""
    curves = live_curves(state.run_metrics(Path(run_dir)), smoothing)
    points = (curves[(curves.metric == "loss") & (curves.kind == "raw")].shape[0],
              curves[(curves.metric == "loss") & (curves.split == "validation")].shape[0])
    if curves.empty:
        return None, None, points
    return (vega_spec(curve_chart(curves[curves.metric == "loss"], "Loss", log=log_loss)),
            vega_spec(curve_chart(curves[curves.metric == "accuracy"], "Accuracy", percent=True)), points)
