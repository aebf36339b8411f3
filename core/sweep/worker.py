"""A sweep worker: ask the study for a trial, train it as a normal run, tell the study how it went, repeat.

Any number of workers, on any machines that share the runs folder (and the storage, when it is a
database), work on one sweep until it has its number of trials or a stop is requested. A worker killed
mid-trial leaves its run "interrupted" (resumable); the next worker to look, or the Sweeps page, marks
that trial failed, and the other workers go on to the trial count.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from core.rundir import lifecycle
from core.rundir.config import TrainConfig
from core.rundir.state import RunState
from core.sweep.results import reap_dead_trials
from core.sweep.study import METRIC, Sweep, SweepError, load_sweep
from core.training.device import resolve_device
from core.training.engine import RunResult, train

log = logging.getLogger(__name__)
STOP_POLL_S = 0.5


def work(runs_dir: str | Path, sweep_id: str, device: str | None = None,
         stop: threading.Event | None = None) -> int:
    """Train trials of the sweep until it has all of them or a stop is asked for; returns how many this
    worker trained. `device` overrides the base recipe's; a device this machine lacks is refused first."""
    sweep = load_sweep(runs_dir, sweep_id)
    device = device or sweep.base.device
    resolve_device(device)
    stop = stop or threading.Event()
    sweep.clear_stop()  # starting a worker starts the sweep again after a stop
    study = sweep.open_study()
    finished = threading.Event()
    threading.Thread(target=_watch_stop_file, args=(sweep, stop, finished), daemon=True).start()
    trained = 0
    try:
        with sweep.study_errors():  # a journal damaged mid-sweep ends this worker with its sentence
            while not stop.is_set():
                reap_dead_trials(study, runs_dir)
                trial = _next_trial(study, sweep)
                if trial is None:
                    break
                _run_trial(sweep, study, trial, Path(runs_dir), device, stop)
                trained += 1
            reap_dead_trials(study, runs_dir)
    finally:
        finished.set()
    return trained


def _watch_stop_file(sweep: Sweep, stop: threading.Event, finished: threading.Event) -> None:
    while not finished.wait(STOP_POLL_S):
        if sweep.stop_requested():
            stop.set()
            return


def _next_trial(study: optuna.Study, sweep: Sweep) -> optuna.Trial | None:
    """A new trial, or None once the sweep has all its trials (counted under the sweep's lock)."""
    lock = sweep.trial_lock()
    lock.acquire()
    try:
        # Enqueued trials (study.enqueue_trial: points a person asked for) wait without counting yet.
        started = study.get_trials(deepcopy=False, states=tuple(s for s in TrialState if s != TrialState.WAITING))
        if len(started) >= sweep.trials:
            return None
        trial = study.ask()
        trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
        return trial
    finally:
        lock.release()


def _run_trial(sweep: Sweep, study: optuna.Study, trial: optuna.Trial, runs_dir: Path, device: str,
               stop: threading.Event) -> None:
    params = {p.field: p.suggest(trial) for p in sweep.space}
    try:
        cfg = TrainConfig.from_dict({**sweep.base.to_dict(), **params, "device": device})
    except ValueError as exc:  # a combination the space's corners did not catch
        trial.set_user_attr("error", str(exc))
        study.tell(trial, state=TrialState.FAIL)
        return
    run_dir = lifecycle.create_run(runs_dir, cfg.to_dict(), name=f"{sweep.name} #{trial.number}",
                              sweep=(sweep.sweep_id, trial.number))
    trial.set_user_attr("run_id", run_dir.name)
    log.info("sweep %s: trial %d is run %s with %s", sweep.sweep_id, trial.number, run_dir.name, params)

    def report(epoch: int, val: dict[str, Any]) -> bool:
        if METRIC in val:
            trial.report(val[METRIC], epoch)
        return trial.should_prune()

    result = train(cfg, run_dir, stop=stop, on_epoch=report)
    _tell(study, trial, result)


def _tell(study: optuna.Study, trial: optuna.Trial, result: RunResult) -> None:
    if result.state == RunState.COMPLETED and result.best_val_acc is not None:
        study.tell(trial, result.best_val_acc)
    elif result.state == RunState.PRUNED:
        study.tell(trial, state=TrialState.PRUNED)
    else:  # failed, or stopped by a stop request (the run says which, and is resumable)
        if result.error:
            trial.set_user_attr("error", result.error)
        study.tell(trial, state=TrialState.FAIL)


__all__ = ["SweepError", "reap_dead_trials", "work"]
