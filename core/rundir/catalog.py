"""Run folders: the contract between the training engine and everything that shows its results.

    runs/<run-id>/
      config.json            the TrainConfig; the run can be rebuilt from it alone
      meta.json              display name and creation time (the dashboard may rename a run)
      status.json            state, progress, ETA, timestamps, device, error, heartbeat (rewritten atomically)
      metrics.jsonl          append-only records, one JSON object a line, each line flushed
      checkpoints/last.pt    latest weights + optimiser + progress, written atomically
      checkpoints/best.pt    the weights of the best validation accuracy so far
      predictions/val_labels.npz        validation labels and their train-split indices
      predictions/val_epoch_NNNN.npz    class probabilities on the validation split after epoch NNNN
      predictions/test.npz              final test evaluation: label, pred, probs, loss, index
      test_summary.json      accuracy, loss, per-class accuracy of the final test evaluation

Writers here are used by the engine only; readers tolerate damaged folders: every field of the small
files is checked by core.rundir.records, so a torn line, a wrongly typed field, a missing status or an
unreadable checkpoint gives a clear state, never an exception. A run whose process died shows as
"interrupted" (stale heartbeat or dead pid). Every write goes through a temporary file of its own
(unique per call) and a rename, and the temporary file is removed when the write fails (a full disk).
An entry of the runs folder that is a symbolic link is never a run (see run_path), and a run file that
is not a regular file (a FIFO, a socket, a device) makes its run damaged without being opened.
"""
from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import secrets
import shutil
import socket
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.rundir import records
from core.rundir.files import is_disk_full, no_space_error, shown_name, write_atomically
from core.rundir.checkpoints import checkpoint_path
from core.rundir.records import STATES, FileDamaged, RunError
from core.rundir.state import LIVE_STATES, RESUMABLE_STATES

log = logging.getLogger(__name__)

REPO_RUNS_DIR = Path(__file__).resolve().parent.parent / "runs"


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


def new_run_id(label: str) -> str:
    """Sortable by time, readable, unique: 20261124-153012-fastnet-small-a3f9."""
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40] or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{secrets.token_hex(2)}"


# ---------------------------------------------------------------------------------------------
# Atomic small files
# ---------------------------------------------------------------------------------------------

def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomic JSON. No fsync: the rename is atomic for every reader and survives a killed process; the
    status is rewritten every second, and an fsync each time would cost more than it protects."""
    text = json.dumps(data, indent=1, allow_nan=False, default=_json_default)  # fails before touching the disk
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_json(path: Path) -> dict[str, Any] | None:
    """The object in `path`, or None when it is missing or unreadable (the engine's own merge of status)."""
    try:
        data = records.load_json(path)
    except (FileNotFoundError, FileDamaged):
        return None
    return data if isinstance(data, dict) else None


def disk_error_sentence(exc: BaseException, then: str = "resume the run", verb: str = "write") -> str:
    """One sentence (lower case, no full stop) for a failed write or read of the runs folder: a full disk
    (however it was phrased), a read-only folder, no permission, a missing folder, or else the system's words.

    `then` is what to do once the disk has room again ("try again" for an action on a page); `verb` what
    was being done to the file ("remove" for a deletion)."""
    if is_disk_full(exc):
        return f"the disk is full: free some space, then {then}"
    code = getattr(exc, "errno", None)
    name = shown_name(getattr(exc, "filename", None))
    failed = f"could not {verb}{f' {name}' if name else ''}"
    if code == errno.EROFS:
        return (f"{failed}: the runs folder is on a read-only file system; point CIFAR_RUNS_DIR (or --runs-dir) "
                "at a folder you can write to")
    if code in (errno.EACCES, errno.EPERM):
        return (f"{failed}: permission denied; give this user write access to the runs folder, or point "
                "CIFAR_RUNS_DIR (or --runs-dir) at another folder")
    if code == errno.ENOENT:
        return f"{failed}: its folder no longer exists (it was moved or deleted)"
    return f"{failed}: {getattr(exc, 'strerror', None) or type(exc).__name__}"


def action_error_sentence(exc: BaseException, action: str, verb: str = "write") -> str:
    """The one sentence a page shows when `action` ("Renaming the run") failed on the runs folder."""
    return f"{action} failed: {disk_error_sentence(exc, then='try again', verb=verb)}."


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# ---------------------------------------------------------------------------------------------
# Creating and updating a run (engine side)
# ---------------------------------------------------------------------------------------------

def create_run(runs_dir: str | Path, config: dict[str, Any], name: str | None = None,
               state: str = "queued", sweep: tuple[str, int] | None = None) -> Path:
    """Make a new run folder with its config, meta and a first status; returns the folder.

    `sweep` = (sweep id, trial number) for a sweep's trial: meta.json keeps both."""
    label = clean_name(name) if name else config.get("model", "run")
    root = Path(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    path = run_path(root, new_run_id(label))
    path.mkdir()
    now = time.time()
    trial = {"sweep": sweep[0], "trial": sweep[1]} if sweep else {}
    try:
        write_json(path / "config.json", config)
        write_json(path / "meta.json", {"name": label, "created_at": now, **trial})
        write_json(path / "status.json", {
            "state": state, "epoch": 0, "epochs": config.get("epochs"), "step": 0, "total_steps": None,
            "progress": 0.0, "eta_seconds": None, "created_at": now, "started_at": None,
            "finished_at": None, "heartbeat": now, "device": None, "error": None,
            "pid": os.getpid(), "host": socket.gethostname(),
        })
    except BaseException:  # a full disk half-way: no half-made run is left to be listed as damaged
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


def update_status(run_dir: Path, **changes: Any) -> dict[str, Any]:
    """Merge `changes` into status.json (atomically); stamps the heartbeat."""
    status = read_json(run_dir / "status.json") or {}
    status.update(changes)
    status["heartbeat"] = time.time()
    write_json(run_dir / "status.json", status)
    return status


def update_status_in_place(run_dir: Path, **changes: Any) -> None:
    """The last resort of a run failing on a full disk, when update_status found no room for its temporary
    file: rewrite status.json inside the space it already has, so the run still ends "failed" with its
    reason rather than reading "interrupted". Not atomic (a reader may catch it half-written for a moment),
    hence only then; OSError when the new text would need more room than the file holds, or for a link."""
    path = run_dir / "status.json"
    status = read_json(path) or {}
    status.update(changes)
    status["heartbeat"] = time.time()
    data = json.dumps(status, indent=1, allow_nan=False, default=_json_default).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "wb", buffering=0) as fh:
        held = os.fstat(fd)
        if not stat.S_ISREG(held.st_mode) or len(data) > held.st_blocks * 512:
            raise no_space_error(path)  # writing past its blocks would need the room there is not
        fh.write(data)
        fh.truncate(len(data))


def record_classes(run_dir: Path, classes: Sequence[str]) -> None:
    """Keep the class names in meta.json once the data is loaded: pages name classes without opening weights."""
    meta = read_json(run_dir / "meta.json") or {}
    meta["classes"] = list(classes)
    write_json(run_dir / "meta.json", meta)


def rename_run(runs_dir: str | Path, run_id: str, name: str) -> None:
    """Give the run a new display name (its meta.json only); a link is refused by run_path."""
    path = run_path(runs_dir, run_id)
    if not path.is_dir():
        raise RunError(f"Run {run_id} does not exist (it may have been deleted).")
    meta = read_json(path / "meta.json") or {}
    meta["name"] = clean_name(name)
    write_json(path / "meta.json", meta)


def delete_run(runs_dir: str | Path, run_id: str) -> None:
    """Remove the run's folder; an entry that is a link loses the link only, never what it points to."""
    entry = run_entry(runs_dir, run_id)
    if entry.is_symlink():
        entry.unlink()
        return
    if summarize_run(entry).state == "running":
        raise RunError(f"Run {run_id} is still training: stop it before deleting it.")
    shutil.rmtree(entry)  # removes links inside the run, never their targets


def run_exists(runs_dir: str | Path, run_id: str) -> bool:
    """Whether `run_id` names an entry in the folder, a link (even a broken one) included."""
    return os.path.lexists(run_entry(runs_dir, run_id))


class MetricsWriter:
    """Appends metric records to metrics.jsonl; every write is flushed so a kill loses nothing written."""

    def __init__(self, run_dir: Path):
        self._fh = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")

    def write(self, records: list[dict[str, Any]]) -> None:
        lines = (json.dumps(_finite_or_none(r), allow_nan=False, default=_json_default) + "\n" for r in records)
        self._fh.write("".join(lines))
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _finite_or_none(record: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinity are not JSON: a non-finite number is written as null."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}


def truncate_metrics(run_dir: Path, last_step: int) -> None:
    """On resume, drop records past the checkpoint (those steps are trained again) and any test record
    (the final test runs again; a kill after its record but before the final status left one behind)."""
    records = [r for r in read_metrics(run_dir) if r["step"] <= last_step and r["kind"] != "test"]
    text = "".join(json.dumps(r) + "\n" for r in records)
    write_atomically(run_dir / "metrics.jsonl", lambda tmp: tmp.write_text(text, encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# Readers (dashboard side): never raise on a damaged folder
# ---------------------------------------------------------------------------------------------

def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Every valid record of metrics.jsonl (core.rundir.records checks each one; a bad line costs that line only)."""
    return records.read_metrics(run_dir)


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


def effective_state(status: dict[str, Any] | None, now: float | None = None) -> str:
    """The state to show: a live state whose process is gone reads as interrupted."""
    if not status or status.get("state") not in STATES:
        return "damaged"
    state = status["state"]
    if state not in LIVE_STATES:
        return state
    same_host = status.get("host") == socket.gethostname()
    if same_host and not pid_alive(status.get("pid")):
        return "interrupted"
    heartbeat = status.get("heartbeat")
    stale = not isinstance(heartbeat, (int, float)) or (now or time.time()) - heartbeat > HEARTBEAT_TIMEOUT_S
    if state == "running" and stale:
        return "interrupted"
    return state


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs table, from the small files only (metrics.jsonl is not read)."""
    run_id: str
    path: Path
    name: str
    state: str
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


def summarize_run(path: Path) -> RunSummary:
    """One run from its small files, every field checked; a damaged file makes the run "damaged" with its sentence.

    An entry that is a link is damaged with `link_problem`'s sentence, its target unread."""
    if path.is_symlink():
        return RunSummary(run_id=path.name, path=path, name=path.name, state="damaged", error=link_problem(path))
    config, config_problem = _read_checked(path / "config.json", records.check_config)
    status, status_problem = _read_checked(path / "status.json", records.check_status)
    meta, meta_problem = _read_checked(path / "meta.json", records.check_meta)
    meta = meta or {}
    name = meta.get("name") or path.name
    problem = status_problem or config_problem or meta_problem
    if problem is None and config is None and status is None:
        problem = "Not a run folder: it has no config.json or status.json."
    elif problem is None and status is None:
        problem = "status.json is missing."
    config, status = config or {}, status or {}
    state = "damaged" if problem else effective_state(status)
    started, ended = status.get("started_at"), status.get("finished_at") or status.get("heartbeat")
    duration = ended - started if started is not None and ended is not None else None
    error = problem or status.get("error")
    if state == "interrupted" and not error:
        error = INTERRUPTED_MESSAGE if has_checkpoint(path) else NO_CHECKPOINT_MESSAGE
    return RunSummary(
        run_id=path.name, path=path, name=name, state=state, model=config.get("model"),
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


# ---------------------------------------------------------------------------------------------
# What can be done with a run: one answer for the job manager, the command line and the pages
# ---------------------------------------------------------------------------------------------

def has_checkpoint(run_dir: Path) -> bool:
    return checkpoint_path(run_dir, "last").is_file()


def resume_refusal(summary: RunSummary) -> str | None:
    """Why `summary`'s run cannot be resumed, in one sentence, or None when it can."""
    if summary.state not in RESUMABLE_STATES:
        return (f"Run {summary.run_id} is {summary.state}; only stopped, failed or interrupted runs can be "
                "resumed.")
    if not has_checkpoint(summary.path):
        return (f"Run {summary.run_id} has no checkpoint yet, so there is nothing to resume: start it again "
                "with the same settings.")
    return None


def restart_refusal(summary: RunSummary) -> str | None:
    """Why the run cannot be started again from scratch in its own folder, or None when it can.

    Only a run that ended before its first checkpoint qualifies: it has nothing to lose."""
    if summary.state not in RESUMABLE_STATES:
        return f"Run {summary.run_id} is {summary.state}; only a run that ended early can be started again."
    if has_checkpoint(summary.path):
        return (f"Run {summary.run_id} has a checkpoint, so starting it again would throw away its training: "
                "resume it instead.")
    return None


def queued_refusal(summary: RunSummary) -> str | None:
    """Why the run is not waiting to be trained by the process asked to (the dashboard queues a run, then
    hands it to torchrun), or None when it is."""
    if summary.state != "queued":
        return f"Run {summary.run_id} is {summary.state}; only a queued run can be handed over to train."
    return None


def reset_for_restart(run_dir: Path) -> None:
    """Clear what a run wrote before its first checkpoint (partial metrics, epoch predictions) to train it anew."""
    write_atomically(run_dir / "metrics.jsonl", lambda tmp: tmp.write_text("", encoding="utf-8"))
    shutil.rmtree(run_dir / "predictions", ignore_errors=True)
    (run_dir / "test_summary.json").unlink(missing_ok=True)
    update_status(run_dir, state="queued", epoch=0, step=0, progress=0.0, error=None, best_val_acc=None,
                  test_acc=None, started_at=None, finished_at=None)
