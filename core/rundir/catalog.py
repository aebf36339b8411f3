"""The runs folder as a reader sees it: which entries are runs, what they may be called, and one checked
summary of each (the runs table, the pickers, the job manager's questions all start here).

A run's files are named in core.rundir.layout; creating, updating, renaming and deleting a run live in
core.rundir.lifecycle. Readers here tolerate damaged folders: every field of the small files is checked
by core.rundir.records, so a torn line, a wrongly typed field, a missing status or an unreadable checkpoint
gives a clear state, never an exception. A run whose process died shows as "interrupted" (stale heartbeat
or dead pid). An entry of the runs folder that is a symbolic link is never a run (see run_path), and a run
file that is not a regular file (a FIFO, a socket, a device) makes its run damaged without being opened.
"""
from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.rundir import layout, records
from core.rundir.records import STATES, FileDamaged, RunError
from core.rundir.state import LIVE_STATES, RunState

log = logging.getLogger(__name__)

REPO_RUNS_DIR = Path(__file__).resolve().parent.parent.parent / "runs"


def default_runs_dir() -> Path:
    """Where runs live unless told otherwise: $CIFAR_RUNS_DIR, else <repo>/runs (CLI and dashboard alike)."""
    return Path(os.environ.get("CIFAR_RUNS_DIR") or REPO_RUNS_DIR)


SWEEPS_DIR_NAME = "sweeps"  # runs/sweeps/ holds the sweeps (core/sweep), not a run
HEARTBEAT_TIMEOUT_S = 60.0  # a running run silent this long is reported as interrupted
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_NAME_LENGTH = 100


# ---------------------------------------------------------------------------------------------
# Paths: every path built from outside text goes through here and must stay inside runs/.
# A run is a real folder directly inside the runs folder. An entry that is a symbolic link is never a run,
# wherever it points (another run, a folder elsewhere, nothing): it is listed as damaged with the sentence
# of `link_problem`, nothing reads or writes through it, and deleting it removes the link only.
# ---------------------------------------------------------------------------------------------

def run_entry(runs_dir: str | Path, run_id: str, kind: str = "run") -> Path:
    """The entry `run_id` names directly inside `runs_dir`, not resolved: it may be a link (see run_path).

    Refuses ids that could name anything but a direct child of the folder."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id:
        raise RunError(
            f"{kind.capitalize()} id {run_id!r} is not valid: use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit.")
    return Path(runs_dir).resolve() / run_id  # the pattern has no '/': always a direct child


def run_path(runs_dir: str | Path, run_id: str, kind: str = "run") -> Path:
    """The folder of `run_id` inside `runs_dir`, refusing ids that could point anywhere else, links included.

    `kind` names what the folder holds in the refusal ("sweep" for runs/sweeps/)."""
    path = run_entry(runs_dir, run_id, kind)
    if path.is_symlink():
        raise RunError(link_problem(path, kind))
    return path


def run_exists(runs_dir: str | Path, run_id: str) -> bool:
    """Whether `run_id` names an entry in the folder, a link (even a broken one) included."""
    return os.path.lexists(run_entry(runs_dir, run_id))


def link_problem(path: Path, kind: str = "run") -> str:
    """Why the entry `path` (a symbolic link) is not used as a run, in one sentence."""
    try:
        target = f" to {os.readlink(path)}"
    except OSError:
        target = ""
    return (f"{path.name} is a link{target}, not a {kind} folder: links in the {kind}s folder are never "
            f"followed, so move the folder itself here to use it (deleting this entry removes the link only).")


def clean_name(name: str, kind: str = "run") -> str:
    """A display name typed by a person: any language, but no control characters, bounded length.

    `kind` names what is being named in the refusal ("sweep")."""
    what = f"A {kind} name"
    if not isinstance(name, str):
        raise RunError(f"{what} must be text.")
    if "\x00" in name:
        raise RunError(f"{what} cannot contain a NUL character.")
    cleaned = "".join(ch for ch in name if ch.isprintable()).strip()
    if not cleaned:
        raise RunError(f"{what} needs at least one visible character.")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise RunError(f"{what} can be at most {MAX_NAME_LENGTH} characters long, got {len(cleaned)}.")
    return cleaned


# ---------------------------------------------------------------------------------------------
# Readers (dashboard side): never raise on a damaged folder
# ---------------------------------------------------------------------------------------------

def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Every valid record of metrics.jsonl (core.rundir.records checks each one; a bad line costs that line only)."""
    return records.read_metrics(run_dir)


def has_checkpoint(run_dir: Path) -> bool:
    """Whether the run has a last checkpoint to resume from or predict with."""
    return layout.checkpoint(run_dir, "last").is_file()


def pid_alive(pid: Any) -> bool:
    """Whether a process with this id runs on this machine."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def effective_state(status: dict[str, Any] | None, now: float | None = None) -> RunState:
    """The state to show: a live state whose process is gone reads as interrupted."""
    if not status or status.get("state") not in STATES:
        return RunState.DAMAGED
    state = RunState(status["state"])
    if state not in LIVE_STATES:
        return state
    same_host = status.get("host") == socket.gethostname()
    if same_host and not pid_alive(status.get("pid")):
        return RunState.INTERRUPTED
    heartbeat = status.get("heartbeat")
    stale = not isinstance(heartbeat, (int, float)) or (now or time.time()) - heartbeat > HEARTBEAT_TIMEOUT_S
    if state == RunState.RUNNING and stale:
        return RunState.INTERRUPTED
    return state


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs table, from the small files only (metrics.jsonl is not read)."""
    run_id: str
    path: Path
    name: str
    state: RunState
    model: str | None = None
    data: str | None = None
    epoch: int = 0
    epochs: int | None = None
    progress: float = 0.0
    best_val_acc: float | None = None
    test_acc: float | None = None
    created_at: float | None = None
    duration_s: float | None = None
    device: str | None = None
    error: str | None = None
    classes: list[str] | None = None  # from meta.json, once the run has loaded its data
    sweep: str | None = None  # from meta.json: the sweep this run is a trial of, and its trial number
    trial: int | None = None
    status: dict[str, Any] = field(default_factory=dict, repr=False)
    config: dict[str, Any] = field(default_factory=dict, repr=False)


INTERRUPTED_MESSAGE = ("The training process stopped without finishing (killed, crashed or the machine "
                       "restarted); resume it to continue.")
NO_CHECKPOINT_MESSAGE = ("The training process stopped before its first checkpoint, so there is nothing to "
                         "resume: start it again with the same settings.")


def _read_checked(path: Path, check: Callable[[Any], dict[str, Any]]) -> tuple[dict[str, Any] | None, str | None]:
    """(checked contents, None), (None, None) when the file is absent, or (None, the sentence) when damaged."""
    try:
        return check(records.load_json(path)), None
    except FileNotFoundError:
        return None, None
    except FileDamaged as exc:
        return None, str(exc)


def _small_files(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], str | None]:
    """(config, status, meta, the sentence of the first problem or None), each file checked; absent ones empty."""
    config, config_problem = _read_checked(layout.config(path), records.check_config)
    status, status_problem = _read_checked(layout.status(path), records.check_status)
    meta, meta_problem = _read_checked(layout.meta(path), records.check_meta)
    problem = status_problem or config_problem or meta_problem
    if problem is None and config is None and status is None:
        problem = f"Not a run folder: it has no {layout.CONFIG} or {layout.STATUS}."
    elif problem is None and status is None:
        problem = f"{layout.STATUS} is missing."
    return config or {}, status or {}, meta or {}, problem


def summarize_run(path: Path) -> RunSummary:
    """One run from its small files, every field checked; a damaged file makes the run "damaged" with its sentence.

    An entry that is a link is damaged with `link_problem`'s sentence, its target unread."""
    if path.is_symlink():
        return RunSummary(run_id=path.name, path=path, name=path.name, state=RunState.DAMAGED,
                          error=link_problem(path))
    config, status, meta, problem = _small_files(path)
    state = RunState.DAMAGED if problem else effective_state(status)
    started, ended = status.get("started_at"), status.get("finished_at") or status.get("heartbeat")
    duration = ended - started if started is not None and ended is not None else None
    error = problem or status.get("error")
    if state == RunState.INTERRUPTED and not error:
        error = INTERRUPTED_MESSAGE if has_checkpoint(path) else NO_CHECKPOINT_MESSAGE
    return RunSummary(
        run_id=path.name, path=path, name=meta.get("name") or path.name, state=state, model=config.get("model"),
        data=config.get("data"), epoch=status.get("epoch", 0), epochs=status.get("epochs"),
        progress=status.get("progress", 0.0), best_val_acc=status.get("best_val_acc"),
        test_acc=status.get("test_acc"), created_at=status.get("created_at") or meta.get("created_at"),
        duration_s=duration, device=status.get("device"), error=error, classes=meta.get("classes"),
        sweep=meta.get("sweep"), trial=meta.get("trial"), status=status, config=config)


def list_runs(runs_dir: str | Path) -> list[RunSummary]:
    """Every run folder under `runs_dir`, newest first, and every link there as damaged (see run_path);
    stray plain files and hidden entries are skipped."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if (p.is_symlink() or p.is_dir()) and not p.name.startswith(".")
               and _RUN_ID.match(p.name) and p.name != SWEEPS_DIR_NAME]
    summaries = [summarize_run(p) for p in folders]
    return sorted(summaries, key=lambda s: (s.created_at or 0.0, s.run_id), reverse=True)
