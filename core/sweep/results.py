"""What a sweep has found so far, read from its study and its trials' runs: for the page and `status`."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from core import runs
from core.sweep.study import Sweep
from core.sweep.worker import reap_dead_trials

log = logging.getLogger(__name__)

TRIAL_STATES = {TrialState.RUNNING: "running", TrialState.WAITING: "waiting", TrialState.COMPLETE: "completed",
                TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}


@dataclass(frozen=True)
class TrialResult:
    number: int
    state: str  # running, completed, pruned or failed (the study's word)
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

    @property
    def best(self) -> TrialResult | None:
        done = [t for t in self.trials if t.state == "completed" and t.value is not None]
        return max(done, key=lambda t: t.value) if done else None

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.trials)

    @property
    def epochs_saved(self) -> float | None:
        """The share of epochs pruning saved: 1 - epochs trained / epochs the ended trials would have trained."""
        ended = [t for t in self.trials if t.state in ("completed", "pruned") and t.epochs]
        planned = sum(t.epochs for t in ended)
        return 1.0 - sum(t.epochs_done for t in ended) / planned if planned else None

    @property
    def finished(self) -> bool:
        return len(self.trials) >= self.sweep.trials and not any(t.state == "running" for t in self.trials)


def read_results(sweep: Sweep, runs_dir: str | Path, with_importances: bool = True) -> SweepResults:
    """Every trial with its run; trials whose worker died are marked failed first (see reap_dead_trials)."""
    study = sweep.open_study()
    reap_dead_trials(study, runs_dir)
    trials = [_trial_result(t, runs_dir, sweep) for t in study.get_trials(deepcopy=False)]
    return SweepResults(sweep, trials, importances(study, sweep) if with_importances else {})


def _trial_result(trial: optuna.trial.FrozenTrial, runs_dir: str | Path, sweep: Sweep) -> TrialResult:
    run_id = trial.user_attrs.get("run_id")
    summary = _run_summary(runs_dir, run_id)
    epochs = trial.params.get("epochs", sweep.base.epochs)
    return TrialResult(
        number=trial.number, state=TRIAL_STATES.get(trial.state, trial.state.name.lower()),
        value=trial.value if trial.state == TrialState.COMPLETE else None, params=dict(trial.params),
        run_id=run_id if summary is not None else None, run_state=summary.state if summary else None,
        epochs_done=summary.epoch if summary else 0, epochs=epochs,
        error=trial.user_attrs.get("error") or (summary.error if summary else None),
        last_value=_last_reported(trial), run_name=summary.name if summary else None)


def _last_reported(trial: optuna.trial.FrozenTrial) -> float | None:
    """The value reported at the trial's latest epoch, or None before its first."""
    steps = trial.intermediate_values
    return float(steps[max(steps)]) if steps else None


def _run_summary(runs_dir: str | Path, run_id: Any) -> runs.RunSummary | None:
    if not isinstance(run_id, str):
        return None
    try:
        path = runs.run_path(runs_dir, run_id)
    except runs.RunError:
        return None
    return runs.summarize_run(path) if path.is_dir() else None


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
