"""Sweeps page: set up a hyperparameter sweep, start its workers, and follow its trials live.

A sweep (core/sweep) trains many short runs of one recipe, each with other values of the settings it
varies (picked by Optuna), stops hopeless ones early (pruning) and ranks them by validation accuracy.
The form is dashboard/sweep_form.py. Workers are processes of their own (core/jobs/sweeps.py, one per
device), never this page's threads, and everything shown is read again from the sweep's study and its
trials' run folders at every refresh, so a worker started from the command line on another machine
shows up here like the others. Every trial is a normal run: picking one in the table makes it the
sidebar's run for the other pages.
"""
from __future__ import annotations

from functools import partial

import streamlit as st

from core.sweep.points import sweep_points
from dashboard.sweep_words import best_text, describe_param, importance_table, trials_table
from dashboard.wording import MISSING, created_text, data_label, plural

from core.rundir import files
from core.rundir.state import RunState
from core.training.device import worker_devices
from core.sweep import (DamagedSweep, Param, Sweep, SweepError, SweepResults, TrialResult, list_sweeps, load_sweep,
                        read_results)
from core.sweep.results import importances
from dashboard import charts, controls, state, sweep_form
from dashboard.text import plain

PICK_KEY = "sweeps_sweep"  # the sweep shown
TABLE_KEY = "sweeps_trials"
MESSAGE_KEY = "sweeps_message"  # (kind, sentence) from Start or Stop, shown once
RATE_KEY = "sweeps_refresh"  # (sweep id, seconds or None): the refresh the fragment was drawn with
PICKED_KEY = "sweeps_picked_run"  # set by a table pick: redraw the whole page so the sidebar shows the run
LIVE_REFRESH_S = 2.0  # while a trial trains or a worker of this dashboard runs
IDLE_REFRESH_S = 10.0  # an unfinished sweep with nothing running: a worker may start on another machine
ERRORS_PAGE, RUNS_PAGE, TRAIN_PAGE = "views/errors.py", "views/runs.py", "views/train.py"


_label, _words = controls.label, controls.choice_words  # a setting's name, and a value's, in the Train page's words


# ---------------------------------------------------------------------------------------------
# Which sweep
# ---------------------------------------------------------------------------------------------

def pick_sweep(sweeps: list[Sweep | DamagedSweep]) -> Sweep | DamagedSweep | None:
    """The sweep to show: the one just created, else the one picked (a picker when there are several,
    newest first, damaged ones last), else the newest. None when there is none (a damaged one shows its
    sentence: see _sweep_view)."""
    if not sweeps:
        return None
    ids = [s.sweep_id for s in sweeps]
    created = st.session_state.pop(sweep_form.CREATED_KEY, None)
    if created in ids:
        st.session_state[PICK_KEY] = created
    elif st.session_state.get(PICK_KEY) not in ids:
        st.session_state[PICK_KEY] = ids[0]
    if len(sweeps) > 1:
        labels = {s.sweep_id: sweep_label(s) for s in sweeps}
        st.selectbox("Sweep", ids, key=PICK_KEY, format_func=labels.get,
                     help="The sweep to follow, newest first (named by its name and when it was created); sweeps "
                          "that cannot be used come last: pick one to read why.")
    return next(s for s in sweeps if s.sweep_id == st.session_state[PICK_KEY])


def sweep_label(sweep: Sweep | DamagedSweep) -> str:
    if sweep.problem:
        return f"{sweep.sweep_id} · cannot be used"
    return f"{sweep.name} · {created_text(sweep.created_at) or sweep.sweep_id}"


def refresh_every(results: SweepResults, workers: int) -> float | None:
    """Seconds between refreshes: often while anything trains, seldom while a worker elsewhere may still
    start, never once the sweep has all its trials or was stopped."""
    if workers or results.count(RunState.RUNNING):
        return LIVE_REFRESH_S
    if results.finished or results.sweep.stop_requested():
        return None
    return IDLE_REFRESH_S


def show_sweep(sweep: Sweep) -> None:
    """The chosen sweep in a fragment that refreshes itself at `refresh_every`'s pace. Its sweep file was
    read by list_sweeps for this script run; each refresh reads only its study and its trials' runs."""
    drawn = st.session_state.get(RATE_KEY)
    every = drawn[1] if drawn and drawn[0] == sweep.sweep_id else LIVE_REFRESH_S
    st.session_state[RATE_KEY] = (sweep.sweep_id, every)
    st.fragment(_sweep_view, run_every=every)(sweep)


def _sweep_view(sweep: Sweep) -> None:
    sweep_id = sweep.sweep_id
    try:
        results = read_results(sweep, state.runs_dir(), with_importances=False)
    except SweepError as exc:  # a damaged journal or storage, or the sweep deleted while the page was open
        _header(sweep)
        st.error(plain(exc))
        return
    workers = state.job_manager().sweep_workers(sweep_id)
    every = refresh_every(results, workers)
    if st.session_state.get(RATE_KEY) != (sweep_id, every):
        st.session_state[RATE_KEY] = (sweep_id, every)
        st.rerun()  # started or ended: redraw the page so the refresh timer follows
    if st.session_state.pop(PICKED_KEY, False):
        st.rerun()  # a trial picked in the table: the sidebar's picker shows its run
    _header(sweep)
    if results.read_only:
        st.warning(plain(results.read_only), icon=":material/lock:")
    _workers(sweep, results, workers)
    _numbers(results)
    _trials(results)
    points = sweep_points(results)
    progress_column, importance_column = st.columns([3, 2], gap="large")
    with progress_column:
        _progress_chart(results, points)
    with importance_column:
        _importances(results)
    _setting_charts(results, points)


# ---------------------------------------------------------------------------------------------
# What the sweep is, and its workers
# ---------------------------------------------------------------------------------------------

def _header(sweep: Sweep) -> None:
    base = sweep.base
    st.subheader(plain(sweep.name))
    details = [f"{_label('model')} {base.model}", data_label(base.data),
               f"{plural(base.epochs, 'epoch')} a trial", f"{plural(sweep.trials, 'trial')}",
               sweep_form.SAMPLER_SHORT.get(sweep.sampler, sweep.sampler),
               sweep_form.PRUNER_SHORT.get(sweep.pruner, sweep.pruner)]
    created = created_text(sweep.created_at)
    if created:
        details.append(f"created {created}")
    st.caption(" · ".join(plain(d) for d in details))
    st.markdown("**Varies** " + "; ".join(plain(describe(p)) for p in sweep.space))


def describe(param: Param) -> str:
    return describe_param(param, _label, _words)


def _workers(sweep: Sweep, results: SweepResults, workers: int) -> None:
    devices = worker_devices()
    start, stop, note = st.columns([1, 1, 4], vertical_alignment="center")
    start.button("Start workers", key="sweeps_start", type="primary", icon=":material/play_arrow:",
                 on_click=_start, args=(sweep.sweep_id, devices), disabled=workers > 0 or results.finished,
                 help=f"Train this sweep's trials on this machine: one worker per device ({', '.join(devices)}), "
                      "each a process of its own that asks for the next trial until the sweep has all of them.")
    stop.button("Stop sweep", key="sweeps_stop", icon=":material/stop:", on_click=_stop, args=(sweep.sweep_id,),
                disabled=results.finished or sweep.stop_requested(),
                help="Ask every worker of this sweep, here or on other machines, to stop. Their current trials end "
                     "(counted as failed; their runs are kept and can be resumed on the Train page).")
    note.caption(workers_text(sweep, results, workers, devices))
    message = st.session_state.pop(MESSAGE_KEY, None)
    if message:
        kind, text = message
        (st.error if kind == "error" else st.success)(plain(text))
    if not results.finished:
        st.caption("To add a worker on another machine that shares this runs folder, run this there (with the "
                   "folder's path as that machine sees it):")
        st.code(f"python -m core.sweep work --sweep {sweep.sweep_id} --runs-dir {state.runs_dir()}", language=None,
                wrap_lines=True)


def workers_text(sweep: Sweep, results: SweepResults, workers: int, devices: list[str]) -> str:
    if workers:
        verb = "is" if workers == 1 else "are"
        return f"{plural(workers, 'worker')} of this sweep {verb} training from this dashboard."
    if results.finished:
        return "The sweep has all its trials."
    if sweep.stop_requested():
        return "Stopped. Start workers carries on with the trials still to train."
    return (f"No worker of this sweep runs from this dashboard. Start workers starts {len(devices)} "
            f"(on {', '.join(devices)}); workers started on other machines show up here too.")


def _start(sweep_id: str, devices: list[str]) -> None:
    try:
        count = state.job_manager().start_sweep_workers(sweep_id, devices)
    except (SweepError, ValueError) as exc:
        st.session_state[MESSAGE_KEY] = ("error", str(exc))
        return
    except OSError as exc:  # a read-only or full runs folder: the workers' logs and the stop file live there
        st.session_state[MESSAGE_KEY] = ("error", files.action_error_sentence(exc, "Starting the workers"))
        return
    st.session_state[MESSAGE_KEY] = ("success", f"Started: {plural(count, 'worker')} now training.")


def _stop(sweep_id: str) -> None:
    try:
        state.job_manager().stop_sweep(sweep_id)
    except SweepError as exc:
        st.session_state[MESSAGE_KEY] = ("error", str(exc))
        return
    except OSError as exc:  # the stop request is a file in the sweep's folder
        st.session_state[MESSAGE_KEY] = ("error", files.action_error_sentence(exc, "Asking the workers to stop"))
        return
    st.session_state[MESSAGE_KEY] = ("success", "Asked every worker to stop: their current trials end now.")


# ---------------------------------------------------------------------------------------------
# How far it is
# ---------------------------------------------------------------------------------------------

def _numbers(results: SweepResults) -> None:
    count = results.count
    done = count(RunState.COMPLETED) + count(RunState.PRUNED) + count(RunState.FAILED)
    trials, best, saved = st.columns(3)
    trials.metric("Trials done", f"{done} of {results.sweep.trials}",
                  help="Trials that ended: completed, pruned (stopped early by the pruner) or failed.")
    trials.caption(f"{count(RunState.COMPLETED)} completed · {count(RunState.PRUNED)} pruned · "
                   f"{count(RunState.FAILED)} failed · {count(RunState.RUNNING)} running")
    top = results.best
    best.metric("Best validation accuracy", f"{top.value:.1%}" if top else MISSING,
                help="The highest validation accuracy a completed trial reached, after any of its epochs.")
    best.caption(plain(best_text(results, _label, _words) or "Shown once a trial has completed."))
    share = results.epochs_saved
    saved.metric("Epochs saved by pruning", f"{share:.0%}" if share is not None else MISSING,
                 help="Of the epochs the ended trials were set to train, the share pruning spared.")
    saved.caption("Pruned trials stop after the epoch where they fell behind the others.")


# ---------------------------------------------------------------------------------------------
# The trials
# ---------------------------------------------------------------------------------------------

def _trials(results: SweepResults) -> None:
    trials = sorted(results.trials, key=lambda t: t.number)  # new trials add rows at the end: a pick stays put
    st.markdown("**Trials**")
    if not trials:
        st.caption("No trial yet: start workers above, or from the command line.")
        return
    table = trials_table(results, _label, _words)
    if not table["Problem"].any():
        table = table.drop(columns="Problem")  # room for the others
    config = {
        "Trial": st.column_config.NumberColumn(format="#%d", help="Trials are numbered in the order they started."),
        "State": st.column_config.TextColumn(help="running, completed, pruned (stopped early: it lagged behind) or "
                                                  "failed (its error is under Problem)."),
        "Validation accuracy": st.column_config.NumberColumn(
            format="percent", help="A completed trial's best validation accuracy; a running or pruned one's after "
                                   "its latest epoch."),
        "Epochs done": st.column_config.TextColumn(help="Epochs trained of those planned."),
        "Run": st.column_config.TextColumn(help="The trial's run, listed with the others on the Runs page."),
        "Problem": st.column_config.TextColumn(help="Why a trial failed."),
    }
    for param in results.sweep.space:
        if param.choices is None:
            config[_label(param.field)] = st.column_config.NumberColumn(format="%.4g" if isinstance(param.low, float)
                                                                        else "%d")
    st.dataframe(table, key=TABLE_KEY, hide_index=True, width="stretch", placeholder=MISSING,
                 column_config=config, on_select=partial(_on_pick, [t.run_id for t in trials]),
                 selection_mode="single-row")
    rows = _picked_rows()
    if rows and rows[0] < len(trials):
        _trial_links(trials[rows[0]])
    else:
        st.caption("Pick a row to make its run the sidebar's run and open it on the other pages.")


def _picked_rows() -> list[int]:
    current = st.session_state.get(TABLE_KEY)
    return list(current["selection"]["rows"]) if current is not None else []


def _on_pick(run_ids: list[str | None]) -> None:
    rows = _picked_rows()
    if rows and rows[0] < len(run_ids) and run_ids[rows[0]]:
        state.select_run(run_ids[rows[0]])
        st.session_state[PICKED_KEY] = True


def _trial_links(trial: TrialResult) -> None:
    if not trial.run_id:
        st.caption(f"Trial #{trial.number} has no run. {plain(trial.error or '')}")
        return
    st.caption(f"Trial #{trial.number} is the run {plain(trial.run_name or trial.run_id)}, now the sidebar's run:")
    errors, runs_link, train = st.columns(3)
    errors.page_link(ERRORS_PAGE, label="Its mistakes", icon=":material/grid_on:",
                     help="The Errors page: its confusion matrix and the pictures it got wrong.")
    runs_link.page_link(RUNS_PAGE, label="All runs", icon=":material/table_rows:",
                        help="The Runs page: its numbers beside the other catalog, rename, download or delete.")
    train.page_link(TRAIN_PAGE, label="Its learning curves", icon=":material/model_training:",
                    help="The Train page's live view of this run.")


# ---------------------------------------------------------------------------------------------
# Charts
# ---------------------------------------------------------------------------------------------

def _settings(results: SweepResults) -> dict[str, str]:
    return {p.field: _label(p.field) for p in results.sweep.space}


def _progress_chart(results: SweepResults, points) -> None:
    st.markdown("**Best so far**")
    if points["accuracy"].notna().sum() == 0:
        st.caption("Each trial's accuracy shows here after its first epoch.")
        return
    st.altair_chart(charts.sweep_progress_chart(_in_words(results, points), _settings(results), results.sweep.trials),
                    key="sweeps_progress", width="stretch")
    st.caption("One dot a trial (pruned ones where they were stopped, running ones at their latest epoch); the "
               "line is the best completed trial so far.")


def _short(field: str, value: object) -> str:
    return controls.choice_words(field, value, short=True)


def _in_words(results: SweepResults, points):
    """`points` with the chosen values of each list setting in short words, as the charts show them."""
    points = points.copy()
    for param in results.sweep.space:
        if param.choices is not None:
            points[param.field] = [None if v is None else _short(param.field, v) for v in points[param.field]]
    return points


def _setting_charts(results: SweepResults, points) -> None:
    shown = _in_words(results, points).dropna(subset=["accuracy"])
    if shown.empty:
        return
    st.markdown("**Accuracy against each setting**")
    space = results.sweep.space
    columns = st.columns(min(3, len(space)))
    for k, param in enumerate(space):
        order = None if param.choices is None else [_short(param.field, c) for c in param.choices]
        span = None if param.choices is not None else (param.low, param.high)
        with columns[k % len(columns)]:
            st.altair_chart(charts.setting_chart(shown, param.field, _label(param.field), _settings(results),
                                                 log=param.log, order=order, span=span),
                            key=f"sweeps_setting_{param.field}", width="stretch")
    missing = len(points) - len(shown)
    left_out = f" {plural(missing, 'trial')} without an accuracy yet (failed, or before its first " \
               "epoch) left out." if missing else ""
    st.caption("One dot a trial; pruned trials at the accuracy they had when stopped." + left_out)


def _importances(results: SweepResults) -> None:
    st.markdown("**Which settings mattered**")
    completed = tuple(t.number for t in results.trials if t.state == RunState.COMPLETED)
    shares = _cached_importances(str(state.runs_dir()), results.sweep.sweep_id, completed)
    if not shares:
        st.caption("How much each setting explains the differences in validation accuracy shows here once two "
                   "completed trials have different values of a setting.")
        return
    st.altair_chart(charts.importance_chart(importance_table(shares, _label)), key="sweeps_importance",
                    width="stretch")
    same = [_label(p.field) for p in results.sweep.space if p.field not in shares]
    st.caption("The share of the differences in validation accuracy between completed trials that each setting "
               "explains (Optuna's fANOVA importance); more trials make it steadier."
               + (f" Not shown: {', '.join(same)} (one value in every completed trial)." if same else ""))


@st.cache_data(max_entries=32, show_spinner=False)
def _cached_importances(runs_dir: str, sweep_id: str, completed: tuple[int, ...]) -> dict[str, float]:
    """Computed again only when another trial completes (fANOVA fits a small forest: not every refresh)."""
    try:
        sweep = load_sweep(runs_dir, sweep_id)
        study = sweep.open_study()
        with sweep.study_errors():
            return importances(study, sweep)
    except SweepError:  # damaged since the table was read: the table's own sentence says so at the next refresh
        return {}


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------

st.title("Sweeps")
st.caption("A sweep trains many short runs of one recipe, each with other values of the settings you choose, stops "
           "hopeless ones early and finds the values that do best on the validation pictures.")
sweeps = list_sweeps(state.runs_dir())  # once per script run (Create's callback ran before it: a new sweep is in)
with st.expander("New sweep", expanded=not sweeps, icon=":material/add_circle:"):
    sweep_form.show()
chosen = pick_sweep(sweeps)
if chosen is None:
    st.info("There is no sweep yet: set one up above, create it, then start its workers.")
    st.stop()
if chosen.problem:  # a damaged sweep file: its sentence, and nothing to read or start
    st.subheader(plain(chosen.name))
    st.error(plain(chosen.problem))
    st.stop()
show_sweep(chosen)
