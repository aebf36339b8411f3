"""A sweep on disk and its Optuna study.

    runs/sweeps/<sweep-id>/
      sweep.json     name, base config, search space, trial count, sampler, pruner, storage URL (or null)
      journal.log    the Optuna study, when no storage URL was given (a JournalStorage file: no server)
      trials.lock    taken while a worker counts the trials and asks for the next one
      stop           present while a stop is requested; every worker ends its trial ("stopped") and exits
      workers/       the logs of workers started from the dashboard

Each trial is a normal run in `runs/` named "<sweep name> #<trial>", whose meta file names the sweep and
the trial. Several machines work on one sweep through a shared runs folder, or through a storage URL that
they all reach (any database Optuna's RDBStorage takes, e.g. postgresql://...; core/sweep/storage.py);
sweep.json tells each worker which.

`load_sweep` reads sweep.json through a validating reader (every field checked for type and range, in the
style of core/rundir/records.py; the base recipe and each value of the space through the checks of create) and
keeps what it read per version of the file (inode, modification time, size), so reading an unchanged sweep
again costs a stat. `list_sweeps` lists a sweep whose sweep.json cannot be used as a `DamagedSweep` with
the sentence saying why.
"""
from __future__ import annotations

import contextlib
import functools
import stat
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage

from core.rundir import catalog, lifecycle, records
from core.rundir.config import TrainConfig
from core.sweep import journal
from core.sweep import storage as databases
from core.sweep.space import Param, SweepError, check_space, quote

# The sweep folder's own names (the table above); a trial's run folder is core/rundir/layout.py's.
SPEC_FILE, JOURNAL_FILE, LOCK_FILE, STOP_FILE = "sweep.json", "journal.log", "trials.lock", "stop"
WORKERS_DIR = "workers"
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

    @property
    def problem(self) -> None:
        """None: a sweep that was read is usable (a DamagedSweep says why it is not)."""
        return None

    def _storage(self) -> optuna.storages.BaseStorage:
        if self.storage:
            return databases.open_study_database(self.storage, self.sweep_id)
        return _journal_storage(str(self.path / JOURNAL_FILE))

    def trial_lock(self) -> journal.HolderLock:
        """Held while counting trials and asking for one, so N workers never start more than `trials`."""
        return journal.HolderLock(str(self.path / LOCK_FILE))

    @property
    def workers_dir(self) -> Path:
        """Where the workers started from the dashboard write their logs."""
        return self.path / WORKERS_DIR

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
    return Path(runs_dir) / catalog.SWEEPS_DIR_NAME


def sweep_path(runs_dir: str | Path, sweep_id: str) -> Path:
    """The folder of `sweep_id`, refusing ids that could point outside runs/sweeps/."""
    try:
        return catalog.run_path(sweeps_dir(runs_dir), sweep_id, kind="sweep")
    except records.RunError as exc:
        raise SweepError(str(exc)) from None


def create_sweep(runs_dir: str | Path, name: str, base: TrainConfig, space: list[Param], trials: int,
                 sampler: str = "tpe", pruner: str = "median", storage: str | None = None) -> Sweep:
    """Check everything, then make the sweep's folder and its study. Nothing is created for a bad request.

    A storage URL is checked by connecting to it; a relative SQLite path is kept absolute, so workers
    started in other folders open the same file."""
    _check_settings(base, space, trials, sampler, pruner)
    name = _checked_name(name, trials)
    storage = _usable_storage(storage) if storage else None
    root = sweeps_dir(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    sweep_id = lifecycle.new_run_id(name)
    path = sweep_path(runs_dir, sweep_id)
    path.mkdir()
    sweep = Sweep(sweep_id, path, name, base, tuple(space), trials, sampler, pruner, storage, time.time())
    backend = databases.open_database(storage) if storage else _journal_storage(str(path / JOURNAL_FILE))
    optuna.create_study(study_name=sweep_id, storage=backend, direction="maximize")
    records.write_json(path / SPEC_FILE, sweep.to_dict())  # last: a folder without it is not a sweep
    return sweep


def longest_name(trials: int) -> int:
    """The longest sweep name for `trials` trials: each trial is a run named "<sweep name> #<trial>", and
    that must fit a run name's MAX_NAME_LENGTH."""
    return catalog.MAX_NAME_LENGTH - len(f" #{trials}")


def _checked_name(name: str, trials: int) -> str:
    try:
        name = catalog.clean_name(name, kind="sweep")
    except records.RunError as exc:
        raise SweepError(str(exc)) from None
    if len(name) > longest_name(trials):
        raise SweepError(f"A sweep name can be at most {longest_name(trials)} characters long for {trials} trials, "
                         f"got {len(name)}: its trials are runs named '<sweep name> #<trial>', and a run name can be "
                         f"at most {catalog.MAX_NAME_LENGTH} characters.")
    return name


def _check_settings(base: TrainConfig, space: list[Param], trials: int, sampler: str, pruner: str,
                    corners: bool = True) -> None:
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        raise SweepError(f"The number of trials must be between 1 and {MAX_TRIALS}, got {quote(trials)}.")
    if sampler not in SAMPLERS:
        raise SweepError(f"sampler must be one of {', '.join(SAMPLERS)}, got {quote(sampler)}.")
    if pruner not in PRUNERS:
        raise SweepError(f"pruner must be one of {', '.join(PRUNERS)}, got {quote(pruner)}.")
    if base.val_fraction == 0.0 and base.folds == 0:
        raise SweepError("A sweep ranks its trials by validation accuracy, so the base recipe needs a "
                         "val_fraction above 0.")
    check_space(base, space, corners)


def _usable_storage(url: str) -> str:
    """The storage URL as sweep.json keeps it (a relative SQLite path made absolute), once its database answered."""
    url = databases.absolute_url(url)
    databases.open_database(url)  # SweepError when it is unusable or cannot be reached
    return url


# ---------------------------------------------------------------------------------------------
# Reading sweep.json
# ---------------------------------------------------------------------------------------------

def _one_of(choices: tuple[str, ...]) -> records.Check:
    return (lambda v: isinstance(v, str) and v in choices), f"one of {', '.join(choices)}"


SPEC_FIELDS: dict[str, records.Check] = {  # checked when present; REQUIRED ones must be
    "name": records.TEXT, "created_at": records._or_none(records.TIME),
    "trials": (lambda v: records._is_int(v) and 1 <= v <= MAX_TRIALS, f"a whole number from 1 to {MAX_TRIALS}"),
    "sampler": _one_of(SAMPLERS), "pruner": _one_of(PRUNERS), "storage": records._or_none(records.TEXT),
    "metric": (lambda v: v == METRIC, repr(METRIC)), "base": (lambda v: isinstance(v, dict), "an object of settings"),
    "space": (lambda v: isinstance(v, list) and len(v) > 0, "a list of at least one setting"),
}
REQUIRED = ("name", "base", "space", "trials")
_CONFIG_TYPES = {f.name: f.type for f in fields(TrainConfig)}
_CONFIG_FIELDS = frozenset(_CONFIG_TYPES)


def load_sweep(runs_dir: str | Path, sweep_id: str) -> Sweep:
    """The sweep `sweep_id`, or SweepError saying in one sentence why it cannot be used.

    What sweep.json says is checked once per version of the file (its inode, modification time and size);
    whether a SQLite database it names is still there is checked at every call."""
    path = sweep_path(runs_dir, sweep_id)
    try:
        info = (path / SPEC_FILE).stat()
    except FileNotFoundError:
        raise SweepError(f"There is no sweep {sweep_id} in {sweeps_dir(runs_dir)}.") from None
    except OSError as exc:
        raise SweepError(f"Sweep {sweep_id} cannot be used: its {SPEC_FILE} cannot be read "
                         f"({exc.strerror or type(exc).__name__}).") from None
    if not stat.S_ISREG(info.st_mode):  # a FIFO would block the reader, a folder cannot be read
        raise SweepError(f"Sweep {sweep_id} cannot be used: {SPEC_FILE} is damaged: it is not a regular file.")
    sweep = _read_spec(str(path), info.st_ino, info.st_mtime_ns, info.st_size)
    if isinstance(sweep, str):
        raise SweepError(sweep)
    missing = sweep.storage and databases.missing_file(sweep.storage)
    if missing:
        raise SweepError(f"Sweep {sweep_id} cannot be used: its database file {missing} is missing "
                         f"(moved or deleted).")
    return sweep


@functools.lru_cache(maxsize=1024)
def _read_spec(folder: str, inode: int, mtime_ns: int, size: int) -> Sweep | str:
    """The sweep in `folder`, or the sentence saying why it cannot be used. Kept per version of sweep.json:
    the Sweeps page reads every sweep at each run, and checking a space's values costs a config each."""
    path = Path(folder)
    try:
        return _sweep_from(path, records.load_json(path / SPEC_FILE))
    except FileNotFoundError:  # deleted since load_sweep looked
        return f"There is no sweep {path.name} in {path.parent}."
    except records.FileDamaged as exc:
        return f"Sweep {path.name} cannot be used: {exc}"


def _sweep_from(path: Path, data: Any) -> Sweep:
    """The Sweep that sweep.json's `data` describes; FileDamaged (one sentence, naming the field) otherwise."""
    spec = records._check(SPEC_FILE, data, SPEC_FIELDS)  # FileDamaged names the first wrong field
    missing = [key for key in REQUIRED if key not in spec]
    if missing:
        raise records.FileDamaged(f"{SPEC_FILE} is damaged: {missing[0]} is missing.")
    storage = spec.get("storage") or None
    problem = storage and databases.url_problem(storage)
    if problem:
        raise records.FileDamaged(f"{SPEC_FILE} is damaged: storage {databases.shown(storage)}: {problem}.")
    try:
        base = _base_config(spec["base"])
        space = [Param.from_dict(p) for p in spec["space"]]
        sampler, pruner = spec.get("sampler", "tpe"), spec.get("pruner", "median")
        _check_settings(base, space, spec["trials"], sampler, pruner, corners=False)  # checked at create
        name = _checked_name(spec["name"], spec["trials"])
    except (ValueError, TypeError, ArithmeticError) as exc:  # SweepError is a ValueError; a 400-digit lr overflows
        raise records.FileDamaged(f"{SPEC_FILE} is damaged: {_lowered(exc)}") from None
    return Sweep(path.name, path, name, base, tuple(space), spec["trials"], sampler, pruner, storage,
                 float(spec.get("created_at") or 0.0))


def _base_config(base: dict[str, Any]) -> TrainConfig:
    """The base recipe (settings of other versions ignored, as in a run's saved config); a whole number too
    large for a float field is named here, where TrainConfig would only say "int too large to convert"."""
    known = {k: v for k, v in base.items() if k in _CONFIG_FIELDS}
    for key, value in known.items():
        if _CONFIG_TYPES[key] == "float" and records._is_int(value) and not records._is_number(value):
            raise SweepError(f"base {key} should be a number of at most {records.MAX_COUNT}, got {quote(value)}.")
    return TrainConfig.from_dict(known)


def _lowered(exc: Exception) -> str:
    """An exception's sentence to follow a colon: first letter lowered, one full stop."""
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    return text[0].lower() + text[1:] + "."


# ---------------------------------------------------------------------------------------------
# Every sweep
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DamagedSweep:
    """A sweep folder whose sweep.json cannot be used: listed with the sentence saying why, never hidden."""
    sweep_id: str
    path: Path
    problem: str  # one sentence
    created_at: float = 0.0  # unknown: listed after the usable sweeps, so none of them is shown first

    @property
    def name(self) -> str:
        return self.sweep_id


def list_sweeps(runs_dir: str | Path) -> list[Sweep | DamagedSweep]:
    """Every folder of runs/sweeps/ holding a sweep.json: the usable ones (Sweep) newest first, then those
    that cannot be used (DamagedSweep, whose `.problem` says why; a Sweep's is None)."""
    root = sweeps_dir(runs_dir)
    if not root.is_dir():
        return []
    found = [_listed(runs_dir, folder) for folder in root.iterdir()
             if folder.is_dir() and (folder / SPEC_FILE).exists()]
    return sorted(found, key=lambda s: (s.created_at, s.sweep_id), reverse=True)


def _listed(runs_dir: str | Path, folder: Path) -> Sweep | DamagedSweep:
    try:
        return load_sweep(runs_dir, folder.name)
    except SweepError as exc:
        return DamagedSweep(folder.name, folder, str(exc))
