"""A sweep on disk and its Optuna study.

    runs/sweeps/<sweep-id>/
      sweep.json     name, base config, search space, trial count, sampler, pruner, storage URL (or null)
      journal.log    the Optuna study, when no storage URL was given (a JournalStorage file: no server)
      trials.lock    taken while a worker counts the trials and asks for the next one
      stop           present while a stop is requested; every worker ends its trial ("stopped") and exits
      workers/       the logs of workers started from the dashboard

Each trial is a normal run in `runs/` named "<sweep name> #<trial>", whose meta.json names the sweep and
the trial. Several machines work on one sweep through a shared runs folder, or through a storage URL that
they all reach (any database Optuna's RDBStorage takes, e.g. postgresql://...); sweep.json tells each
worker which.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage

from core import run_files, runs
from core.config import TrainConfig
from core.sweep import journal
from core.sweep.space import Param, SweepError, check_space

SPEC_FILE, JOURNAL_FILE, LOCK_FILE, STOP_FILE = "sweep.json", "journal.log", "trials.lock", "stop"
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")
MAX_TRIALS = 10_000
METRIC = "val_acc"  # trials are ranked by their best validation accuracy


@dataclass(frozen=True)
class Sweep:
    sweep_id: str
    path: Path
    name: str
    base: TrainConfig
    space: tuple[Param, ...]
    trials: int
    sampler: str = "tpe"
    pruner: str = "median"
    storage: str | None = None  # an Optuna storage URL; None = the journal file in the sweep's folder
    created_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "created_at": self.created_at, "base": self.base.to_dict(),
                "space": [p.to_dict() for p in self.space], "trials": self.trials, "sampler": self.sampler,
                "pruner": self.pruner, "storage": self.storage, "metric": METRIC}

    def open_study(self) -> optuna.Study:
        """The study with this sweep's sampler and pruner (Optuna keeps neither in the storage); SweepError in
        one sentence when its journal or storage cannot be read."""
        with self.study_errors():
            return journal.load_study(self.sweep_id, self._storage(), sampler=_sampler(self.sampler),
                                      pruner=_pruner(self.pruner, self.most_epochs))

    def study_errors(self) -> contextlib.AbstractContextManager[None]:
        """Wrap reads and writes of the study: whatever its storage raises becomes SweepError (journal.py)."""
        return journal.study_errors(self.sweep_id, None if self.storage else self.path / JOURNAL_FILE)

    @property
    def most_epochs(self) -> int:
        """The longest a trial can train: the base recipe's epochs, or the top of a varied epochs setting."""
        for param in self.space:
            if param.field == "epochs":
                return int(max(param.choices) if param.choices is not None else param.high)
        return self.base.epochs

    def _storage(self) -> str | optuna.storages.BaseStorage:
        return self.storage or _journal_storage(str(self.path / JOURNAL_FILE))

    def trial_lock(self) -> journal.HolderLock:
        """Held while counting trials and asking for one, so N workers never start more than `trials`."""
        return journal.HolderLock(str(self.path / LOCK_FILE))

    # --- stopping ---
    def request_stop(self) -> None:
        (self.path / STOP_FILE).touch()

    def clear_stop(self) -> None:
        (self.path / STOP_FILE).unlink(missing_ok=True)

    def stop_requested(self) -> bool:
        return (self.path / STOP_FILE).exists()


def _journal_storage(path: str) -> JournalStorage:
    """One storage per journal file in this process, checked and kept by journal.journal_storage. A folder
    without sweep.json is a sweep being created (create_sweep writes it last): its journal may be new."""
    return journal.journal_storage(Path(path), new=not (Path(path).parent / SPEC_FILE).exists())


def _sampler(name: str) -> optuna.samplers.BaseSampler:
    # TPE's constant liar (on by default) keeps parallel workers from proposing the same point.
    return optuna.samplers.RandomSampler() if name == "random" else optuna.samplers.TPESampler()


def _pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    if name == "median":  # after 2 finished trials, stop one whose epoch is below their median at that epoch
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    return optuna.pruners.NopPruner()


def sweeps_dir(runs_dir: str | Path) -> Path:
    return Path(runs_dir) / runs.SWEEPS_DIR_NAME


def sweep_path(runs_dir: str | Path, sweep_id: str) -> Path:
    """The folder of `sweep_id`, refusing ids that could point outside runs/sweeps/."""
    try:
        return runs.run_path(sweeps_dir(runs_dir), sweep_id, kind="sweep")
    except run_files.RunError as exc:
        raise SweepError(str(exc)) from None


def create_sweep(runs_dir: str | Path, name: str, base: TrainConfig, space: list[Param], trials: int,
                 sampler: str = "tpe", pruner: str = "median", storage: str | None = None) -> Sweep:
    """Check everything, then make the sweep's folder and its study. Nothing is created for a bad request."""
    name = _checked_name(name)
    _check_settings(base, space, trials, sampler, pruner)
    if storage:
        _check_storage(storage)
    root = sweeps_dir(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    sweep_id = runs.new_run_id(name)
    path = sweep_path(runs_dir, sweep_id)
    path.mkdir()
    sweep = Sweep(sweep_id, path, name, base, tuple(space), trials, sampler, pruner, storage or None, time.time())
    optuna.create_study(study_name=sweep_id, storage=sweep._storage(), direction="maximize")
    runs.write_json(path / SPEC_FILE, sweep.to_dict())  # last: a folder without it is not a sweep
    return sweep


def _checked_name(name: str) -> str:
    try:
        return runs.clean_name(name, kind="sweep")
    except run_files.RunError as exc:
        raise SweepError(str(exc)) from None


def _check_settings(base: TrainConfig, space: list[Param], trials: int, sampler: str, pruner: str) -> None:
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        raise SweepError(f"The number of trials must be between 1 and {MAX_TRIALS}, got {trials!r}.")
    if sampler not in SAMPLERS:
        raise SweepError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}.")
    if pruner not in PRUNERS:
        raise SweepError(f"pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}.")
    if base.val_fraction == 0.0 and base.folds == 0:
        raise SweepError("A sweep ranks its trials by validation accuracy, so the base recipe needs a "
                         "val_fraction above 0.")
    check_space(base, space)


def _check_storage(url: str) -> None:
    try:
        optuna.storages.get_storage(url)
    except Exception as exc:  # noqa: BLE001 (any driver's error: the URL is refused in one sentence)
        raise SweepError(f"Cannot use the storage {url!r}: {type(exc).__name__}: {exc}".rstrip(".") + ".") from None


def load_sweep(runs_dir: str | Path, sweep_id: str) -> Sweep:
    """The sweep `sweep_id`, or SweepError saying in one sentence why it cannot be used."""
    path = sweep_path(runs_dir, sweep_id)
    try:
        data = run_files.load_json(path / SPEC_FILE)
    except FileNotFoundError:
        raise SweepError(f"There is no sweep {sweep_id} in {sweeps_dir(runs_dir)}.") from None
    except run_files.FileDamaged as exc:
        raise SweepError(f"Sweep {sweep_id} cannot be used: {exc}") from None
    try:
        sweep = Sweep(sweep_id, path, _checked_name(data["name"]), TrainConfig.from_dict(data["base"]),
                      tuple(Param.from_dict(p) for p in data["space"]), data["trials"],
                      data.get("sampler", "tpe"), data.get("pruner", "median"), data.get("storage") or None,
                      float(data.get("created_at") or 0.0))
        _check_settings(sweep.base, list(sweep.space), sweep.trials, sweep.sampler, sweep.pruner)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # SweepError is a ValueError
        problem = str(exc).rstrip(".") if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        raise SweepError(f"Sweep {sweep_id} cannot be used: its sweep.json is damaged ({problem}).") from None
    return sweep


def list_sweeps(runs_dir: str | Path) -> list[Sweep]:
    """Every readable sweep, newest first (a folder with a damaged sweep.json is left out)."""
    root = sweeps_dir(runs_dir)
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        if folder.is_dir() and (folder / SPEC_FILE).exists():
            try:
                found.append(load_sweep(runs_dir, folder.name))
            except SweepError:
                continue
    return sorted(found, key=lambda s: (s.created_at, s.sweep_id), reverse=True)
