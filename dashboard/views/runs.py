"""Runs page: every run in runs/ (dashboard or command line) in one table, curves side by side,
and the housekeeping: rename, download metrics or weights, delete.

The table comes from dashboard.run_listing, the curves from core.analysis.curves; renaming and deleting go
through core.rundir.lifecycle (and the job manager for a run that is waiting), so every refusal is core's one sentence.
"""
from __future__ import annotations

import streamlit as st

from core.analysis.curves import metrics_csv, overlay_curves
from core.rundir import catalog, files, layout, lifecycle
from core.rundir.state import RunState
from dashboard import charts, state
from dashboard.run_listing import run_labels, runs_table, unique_labels
from dashboard.text import plain
from dashboard.wording import MISSING

CONFIRM_KEY = "runs_confirm_delete"  # id of the run whose deletion waits for a yes
MESSAGE_KEY = "runs_message"  # (kind, sentence) from the last action, shown once


# ---------------------------------------------------------------------------------------------
# Table and comparison
# ---------------------------------------------------------------------------------------------

def _table(summaries: list[catalog.RunSummary]) -> None:
    st.dataframe(
        runs_table(summaries), key="runs_table", hide_index=True, width="stretch", placeholder=MISSING,
        column_config={
            "Best val. accuracy": st.column_config.NumberColumn(
                format="percent",
                help="Best share of held-back validation pictures classified right, after any epoch."),
            "Test accuracy": st.column_config.NumberColumn(
                format="percent", help="Share of the separate test pictures classified right at the end."),
            "Epochs done": st.column_config.NumberColumn(help="Complete passes over the training pictures so far."),
            "Epochs planned": st.column_config.NumberColumn(help="Passes the run was set up to make."),
            "Started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm",
                                                       help="When the run was created (UTC)."),
            "Problem": st.column_config.TextColumn(help="Why a run failed, was interrupted or cannot be read."),
        })


def _compare(summaries: list[catalog.RunSummary]) -> None:
    st.subheader("Compare runs")
    labels = unique_labels(summaries)
    readable = [s.run_id for s in summaries if s.state != RunState.DAMAGED]
    st.session_state.setdefault("runs_compare", readable[:3])
    st.session_state["runs_compare"] = [r for r in st.session_state["runs_compare"] if r in readable]
    left, right = st.columns([3, 1])
    chosen = left.multiselect("Runs to compare", readable, format_func=labels.get, key="runs_compare",
                              help="Pick runs to draw their curves on top of each other.")
    smoothing = right.slider("Smoothing", 0.0, 0.99, 0.6, 0.01, key="runs_smoothing",
                             help="Evens out the jumpy training-loss curves (0 = raw values).")
    if not chosen:
        st.caption("Pick one or more runs to see their curves.")
        return
    paths = {s.run_id: s.path for s in summaries}
    per_epoch, per_step = overlay_curves({labels[r]: state.run_metrics(paths[r]) for r in chosen}, smoothing)
    columns = st.columns(3)
    curves = [(per_epoch, "epoch", "val_acc", "Validation accuracy", "Epoch", True),
              (per_epoch, "epoch", "val_loss", "Validation loss", "Epoch", False),
              (per_step, "step", "loss", "Training loss", "Step", False)]
    for column, (frame, x, y, title, x_title, percent) in zip(columns, curves):
        with column:
            st.markdown(f"**{title}**")
            st.altair_chart(charts.overlay_chart(frame, x, y, title, x_title, percent), key=f"runs_chart_{y}",
                            width="stretch")


# ---------------------------------------------------------------------------------------------
# Housekeeping: rename, download, delete
# ---------------------------------------------------------------------------------------------

def _manage(summaries: list[catalog.RunSummary]) -> None:
    st.subheader("Rename, download or delete")
    by_id = {s.run_id: s for s in summaries}
    labels = run_labels(summaries)
    if st.session_state.get("runs_manage") not in by_id:
        selected = st.session_state.get(state.RUN_KEY)
        st.session_state["runs_manage"] = selected if selected in by_id else summaries[0].run_id
    state.resend_if_relabelled("runs_manage", labels[st.session_state["runs_manage"]])
    run_id = st.selectbox("Run to manage", list(by_id), key="runs_manage",
                          format_func=labels.get,
                          help="The run to rename, download or delete.")
    summary = by_id[run_id]
    if summary.error:
        st.caption(f"{summary.state}: {plain(summary.error)}")
    name_column, button_column = st.columns([3, 1], vertical_alignment="bottom")
    name_column.text_input("New name", key="runs_new_name", placeholder=summary.name, max_chars=catalog.MAX_NAME_LENGTH,
                           help="Any name that helps you find the run again; the files on disk keep their id.")
    button_column.button("Rename", key="runs_rename", on_click=_rename, args=(run_id,),
                         help="Give the run the new name.")
    _downloads(summary)
    _delete(summary)
    _message()


def _downloads(summary: catalog.RunSummary) -> None:
    path, run_id = summary.path, summary.run_id
    link = path.is_symlink()  # a link is not a run: nothing is read through it
    checkpoint = layout.checkpoint(path, "last")
    left, right, _ = st.columns([1, 1, 2])
    left.download_button(
        "Metrics (CSV)", data=lambda: metrics_csv(catalog.read_metrics(path)), file_name=f"{run_id}-metrics.csv",
        mime="text/csv", key="runs_csv", icon=":material/download:", on_click="ignore", disabled=link,
        help="Every recorded loss, accuracy and learning rate as a spreadsheet file.")
    right.download_button(
        f"Weights ({checkpoint.name})", data=lambda: checkpoint.read_bytes(),
        file_name=f"{run_id}-{checkpoint.name}",
        mime="application/octet-stream", key="runs_checkpoint", icon=":material/download:", on_click="ignore",
        disabled=link or not checkpoint.is_file(),
        help="The trained model as a PyTorch checkpoint (weights, settings, class names), to use elsewhere."
             if checkpoint.is_file() else "This run has no checkpoint yet (it has not finished an epoch).")


def _delete(summary: catalog.RunSummary) -> None:
    if st.session_state.get(CONFIRM_KEY) != summary.run_id:
        st.button("Delete…", key="runs_delete", on_click=_ask_delete, args=(summary.run_id,), icon=":material/delete:",
                  help="Remove the run and all its files; you will be asked to confirm.")
        return
    st.warning(f"Delete “{plain(summary.name)}” and all its files (weights, curves, predictions)? This cannot be undone.")
    yes, no, _ = st.columns([1, 1, 3])
    yes.button("Yes, delete it", key="runs_delete_confirm", type="primary", on_click=_confirm_delete,
               args=(summary.run_id,), help="Delete the run for good.")
    no.button("Cancel", key="runs_delete_cancel", on_click=_cancel_delete, help="Keep the run.")


def _rename(run_id: str) -> None:
    try:
        lifecycle.rename_run(state.runs_dir(), run_id, st.session_state.get("runs_new_name", ""))
    except catalog.RunError as exc:
        st.session_state[MESSAGE_KEY] = ("error", str(exc))
        return
    except OSError as exc:  # a read-only, full or vanished runs folder
        st.session_state[MESSAGE_KEY] = ("error", files.action_error_sentence(exc, "Renaming the run"))
        return
    st.session_state["runs_new_name"] = ""
    st.session_state[MESSAGE_KEY] = ("success", "Renamed.")


def _ask_delete(run_id: str) -> None:
    st.session_state[CONFIRM_KEY] = run_id


def _cancel_delete() -> None:
    st.session_state.pop(CONFIRM_KEY, None)


def _confirm_delete(run_id: str) -> None:
    st.session_state.pop(CONFIRM_KEY, None)
    try:
        state.delete_run(run_id)
    except catalog.RunError as exc:
        st.session_state[MESSAGE_KEY] = ("error", str(exc))
        return
    except OSError as exc:  # a read-only runs folder, or files this user may not remove
        st.session_state[MESSAGE_KEY] = ("error", files.action_error_sentence(exc, "Deleting the run", verb="remove"))
        return
    st.session_state.pop("runs_manage", None)
    st.session_state[MESSAGE_KEY] = ("success", "Deleted.")


def _message() -> None:
    kind, text = st.session_state.pop(MESSAGE_KEY, (None, None))
    if kind == "error":
        st.error(plain(text))
    elif kind == "success":
        st.success(text)


# ---------------------------------------------------------------------------------------------
# Page
# ---------------------------------------------------------------------------------------------

st.title("Runs")
all_runs = state.run_summaries()
if not all_runs:
    st.info("No runs yet: start one on the Train page, or from a terminal with `python -m core.train`; "
            f"runs are kept in {plain(state.runs_dir())}.")
    st.stop()
_table(all_runs)
_compare(all_runs)
_manage(all_runs)
