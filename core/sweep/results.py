"""What a sweep has found so far, read from its study and its trials' runs: for the page and `status`."""
from __future__ import annotations

import errno
import logging
import math
import socket
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from core.rundir import catalog, files, layout
from core.rundir.state import LIVE_STATES, RunState
from core.sweep.space import Param
from core.sweep.study import Sweep

log = logging.getLogger(__name__)

READ_ONLY_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)


class TrialStatus(StrEnum):
    """A trial's state in the study, in the words the Sweeps page and `status` show. Optuna's, not a
    RunState: a failed trial's run may read stopped or interrupted."""
    RUNNING = "running"
    WAITING = "waiting"  # enqueued by hand, not asked for yet
    COMPLETED = "completed"
    PRUNED = "pruned"
    FAILED = "failed"


TRIAL_STATES = {TrialState.RUNNING: TrialStatus.RUNNING, TrialState.WAITING: TrialStatus.WAITING,
                TrialState.COMPLETE: TrialStatus.COMPLETED, TrialState.PRUNED: TrialStatus.PRUNED,
                TrialState.FAIL: TrialStatus.FAILED}


@dataclass(frozen=True)
class TrialResult:
    number: int
    state: str  # a TrialStatus (the study's word); Optuna's own name, lowered, for any other
    value: float | None  # best validation accuracy of a completed trial
    params: dict[str, Any]
    run_id: str | None
    run_state: str | None  # the run's own state: a failed trial's run may read stopped or interrupted
    epochs_done: int
    epochs: int | None
    error: str | None = None
    last_value: float | None = None  # the validation accuracy it reported last (where a pruned trial stopped)
    run_name: str | None = None  # its run's display name (renamable; "<sweep name> #<trial>" at first)


@dataclass(frozen=True)
class SweepResults:
    sweep: Sweep
    trials: list[TrialResult]
    importances: dict[str, float] = field(default_factory=dict)
    read_only: str | None = None  # why trials whose worker died could not be marked failed (a read-only folder)

    @property
    def best(self) -> TrialResult | None:
        done = [t for t in self.trials if t.state == TrialStatus.COMPLETED and t.value is not None]
        return max(done, key=lambda t: t.value) if done else None

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.trials)

    @property
    def epochs_saved(self) -> float | None:
        """The share of epochs pruning saved: 1 - epochs trained / epochs the ended trials would have trained."""
        ended = [t for t in self.trials if t.state in (TrialStatus.COMPLETED, TrialStatus.PRUNED) and t.epochs]
        planned = sum(t.epochs for t in ended)
        return 1.0 - sum(t.epochs_done for t in ended) / planned if planned else None

    @property
    def finished(self) -> bool:
        return len(self.trials) >= self.sweep.trials and not any(t.state == TrialStatus.RUNNING for t in self.trials)


def read_results(sweep: Sweep, runs_dir: str | Path, with_importances: bool = True) -> SweepResults:
    """Every trial with its run; trials whose worker died are marked failed first (see reap_dead_trials).
    SweepError in one sentence when the study cannot be read; a folder that cannot be written (read-only,
    full) is still read, with `read_only` saying why no trial was marked failed."""
    study = sweep.open_study()
    with sweep.study_errors():
        read_only = _reap_if_writable(study, runs_dir)
        frozen = study.get_trials(deepcopy=False)
        shares = importances(study, sweep) if with_importances else {}
    trials = [_trial_result(t, runs_dir, sweep) for t in frozen]
    return SweepResults(sweep, trials, shares, read_only)


def _reap_if_writable(study: optuna.Study, runs_dir: str | Path) -> str | None:
    """Reap dead trials; None, or the sentence saying why they could not be marked (reaping writes the study)."""
    try:
        reap_dead_trials(study, runs_dir)
    except OSError as exc:
        read_only = exc.errno in READ_ONLY_ERRNOS
        why = "this runs folder is read-only here" if read_only else files.disk_error_sentence(exc, then="try again")
        return f"Trials whose worker died are not marked failed: {why}."
    return None


def _trial_result(trial: optuna.trial.FrozenTrial, runs_dir: str | Path, sweep: Sweep) -> TrialResult:
    attrs = trial_attrs(trial, sweep.space)
    summary = _run_summary(runs_dir, attrs.run_id)
    return TrialResult(
        number=trial.number, state=TRIAL_STATES.get(trial.state, trial.state.name.lower()),
        value=_final_value(trial), params=attrs.params,
        run_id=attrs.run_id if summary is not None else None, run_state=summary.state if summary else None,
        epochs_done=summary.epoch if summary else 0, epochs=attrs.params.get("epochs", sweep.base.epochs),
        error=attrs.problem or attrs.error or (summary.error if summary else None),
        last_value=_last_reported(trial), run_name=summary.name if summary else None)


def _last_reported(trial: optuna.trial.FrozenTrial) -> float | None:
    """The value reported at the trial's latest epoch, or None before its first."""
    steps = {k: v for k, v in trial.intermediate_values.items() if isinstance(k, int)}
    return _number(steps[max(steps)]) if steps else None


def _final_value(trial: optuna.trial.FrozenTrial) -> float | None:
    """A completed trial's value (trial.value raises on a crafted trial with several)."""
    values = trial.values
    return _number(values[0]) if trial.state == TrialState.COMPLETE and values and len(values) == 1 else None


def _number(value: Any) -> float | None:
    """A finite float, or None for anything else a crafted journal may hold."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _run_summary(runs_dir: str | Path, run_id: str | None) -> catalog.RunSummary | None:
    if run_id is None:
        return None
    try:
        path = catalog.run_path(runs_dir, run_id)
    except catalog.RunError:
        return None
    return _ended_run_summary(path) if path.is_dir() else None


_ENDED_SUMMARIES: dict[tuple, catalog.RunSummary] = {}  # (run folder, its small files' versions) -> its summary
_MAX_KEPT = 50_000


def _ended_run_summary(path: Path) -> catalog.RunSummary:
    """catalog.summarize_run, kept while the run's small files are unchanged once it has ended: the Sweeps page
    reads every trial's run at each refresh (1,000 trials: 1,000 folders every 2 s). A live run is read
    afresh each time, since it reads "interrupted" as soon as its process dies, without a file changing."""
    key = (str(path), *(_version(file) for file in (layout.status(path), layout.meta(path), layout.config(path))))
    summary = _ENDED_SUMMARIES.get(key)
    if summary is None:
        summary = catalog.summarize_run(path)
        if summary.state not in LIVE_STATES:
            if len(_ENDED_SUMMARIES) >= _MAX_KEPT:
                _ENDED_SUMMARIES.clear()
            _ENDED_SUMMARIES[key] = summary
    return summary


def _version(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


# ---------------------------------------------------------------------------------------------
# What workers write on a trial, checked
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrialAttrs:
    """A trial's attributes as workers write them (set_user_attr), each None when absent or malformed."""
    run_id: str | None  # the trial's run (set once the run exists)
    host: str | None  # where its worker runs
    pid: int | None  # its worker's process
    error: str | None  # why it failed, when the engine said
    params: dict[str, Any]  # the sweep's settings it was given, those outside the space left out
    problem: str | None = None  # one sentence when an attribute or setting is not what a worker writes


def trial_attrs(trial: optuna.trial.FrozenTrial, space: tuple[Param, ...] = ()) -> TrialAttrs:
    """Read a trial's attributes, and its values of the settings in `space`, through checks: the study is a
    file (or database) anyone can write, so a crafted value becomes a problem sentence on that trial
    instead of an exception on every page."""
    attrs, problems = trial.user_attrs, []
    worker = attrs.get("worker")
    host = pid = None
    if isinstance(worker, dict) and isinstance(worker.get("host"), str) and _is_pid(worker.get("pid")):
        host, pid = worker["host"], worker["pid"]
    elif worker is not None:
        problems.append(f"its attribute 'worker' is {_shown(worker)}, not {{'host': text, 'pid': a process id}}")
    run_id, error = attrs.get("run_id"), attrs.get("error")
    if run_id is not None and not isinstance(run_id, str):
        problems.append(f"its attribute 'run_id' is {_shown(run_id)}, not a run id (text)")
    if error is not None and not isinstance(error, str):
        problems.append(f"its attribute 'error' is {_shown(error)}, not text")
    params = _checked_params(trial, space, problems)
    problem = f"Trial #{trial.number} is damaged: {'; '.join(problems)}." if problems else None
    return TrialAttrs(run_id if isinstance(run_id, str) else None, host, pid,
                      error[:2000] if isinstance(error, str) else None, params, problem)


def _checked_params(trial: optuna.trial.FrozenTrial, space: tuple[Param, ...], problems: list[str]) -> dict[str, Any]:
    params = {}
    for param in space:
        if param.field not in trial.params:
            continue
        value = trial.params[param.field]
        if _in_space(param, value):
            params[param.field] = value
        else:
            problems.append(f"its {param.field} is {_shown(value)}, outside the sweep's {param.describe()}")
    return params


def _in_space(param: Param, value: Any) -> bool:
    if param.choices is not None:
        return any(type(value) is type(c) and value == c for c in param.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return param.low <= value <= param.high  # False for NaN


def _is_pid(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def importances(study: optuna.Study, sweep: Sweep) -> dict[str, float]:
    """Optuna's parameter importances (fANOVA) over the completed trials; {} until two have finished."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    varied = [p.field for p in sweep.space if len({t.params.get(p.field) for t in complete}) > 1]
    if len(complete) < 2 or not varied:
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study, params=varied))
    except (ValueError, RuntimeError) as exc:  # e.g. every value equal: nothing to attribute
        log.info("no importances for %s: %s", sweep.sweep_id, exc)
        return {}


# ---------------------------------------------------------------------------------------------
# Trials whose worker died
# ---------------------------------------------------------------------------------------------

def reap_dead_trials(study: optuna.Study, runs_dir: str | Path) -> list[int]:
    """Mark failed every running trial whose worker is gone (its run reads "interrupted", or, before its
    run existed, its worker's process on this host is dead). Returns their numbers. Writes the study, so
    OSError on a folder that cannot be written."""
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _worker_gone(trial, runs_dir):
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            reaped.append(trial.number)
    return reaped


def _worker_gone(trial: optuna.trial.FrozenTrial, runs_dir: str | Path) -> bool:
    attrs = trial_attrs(trial)
    dead_here = attrs.host == socket.gethostname() and not catalog.pid_alive(attrs.pid)
    if attrs.run_id is None:  # killed before its run existed
        return dead_here
    try:
        run_dir = catalog.run_path(runs_dir, attrs.run_id)
    except catalog.RunError:
        return dead_here
    if not run_dir.is_dir():  # its run was deleted
        return True
    state = catalog.summarize_run(run_dir).state
    return state == RunState.INTERRUPTED or (state not in LIVE_STATES and dead_here)
