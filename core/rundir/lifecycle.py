"""A run's life, as its writers drive it: created queued, its status and metrics kept while it trains, then
renamed, deleted, resumed or started again. The job manager, the command line and the pages all ask here
what may be done with a run (one refusal sentence each), so they answer alike.

Every file is named through core.rundir.layout and written through a temporary file of its own (unique
per call) and a rename (core.rundir.files), and the temporary file is removed when the write fails (a
full disk). Reading and listing runs is core.rundir.catalog's.
"""
from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import socket
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.rundir import layout, records
from core.rundir.catalog import RunSummary, clean_name, has_checkpoint, read_metrics, run_entry, run_path, summarize_run
from core.rundir.files import no_space_error, write_atomically
from core.rundir.records import RunError
from core.rundir.state import RESUMABLE_STATES, RunState


def new_run_id(label: str) -> str:
    """Sortable by time, readable, unique: 20261124-153012-fastnet-small-a3f9."""
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40] or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{secrets.token_hex(2)}"


# ---------------------------------------------------------------------------------------------
# Creating and updating a run (engine side)
# ---------------------------------------------------------------------------------------------

def create_run(runs_dir: str | Path, config: dict[str, Any], name: str | None = None,
               state: RunState = RunState.QUEUED, sweep: tuple[str, int] | None = None) -> Path:
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
        records.write_json(layout.config(path), config)
        records.write_json(layout.meta(path), {"name": label, "created_at": now, **trial})
        records.write_json(layout.status(path), {
            "state": RunState(state), "epoch": 0, "epochs": config.get("epochs"), "step": 0, "total_steps": None,
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
    status = records.read_json(layout.status(run_dir)) or {}
    status.update(changes)
    status["heartbeat"] = time.time()
    records.write_json(layout.status(run_dir), status)
    return status


def update_status_in_place(run_dir: Path, **changes: Any) -> None:
    """The last resort of a run failing on a full disk, when update_status found no room for its temporary
    file: rewrite status.json inside the space it already has, so the run still ends "failed" with its
    reason rather than reading "interrupted". Not atomic (a reader may catch it half-written for a moment),
    hence only then; OSError when the new text would need more room than the file holds, or for a link."""
    path = layout.status(run_dir)
    status = records.read_json(path) or {}
    status.update(changes)
    status["heartbeat"] = time.time()
    data = records.json_text(status, indent=1).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "wb", buffering=0) as fh:
        held = os.fstat(fd)
        if not stat.S_ISREG(held.st_mode) or len(data) > held.st_blocks * 512:
            raise no_space_error(path)  # writing past its blocks would need the room there is not
        fh.write(data)
        fh.truncate(len(data))


def record_classes(run_dir: Path, classes: Sequence[str]) -> None:
    """Keep the class names in meta.json once the data is loaded: pages name classes without opening weights."""
    meta = records.read_json(layout.meta(run_dir)) or {}
    meta["classes"] = list(classes)
    records.write_json(layout.meta(run_dir), meta)


class MetricsWriter:
    """Appends metric records to metrics.jsonl; every write is flushed so a kill loses nothing written."""

    def __init__(self, run_dir: Path):
        self._fh = open(layout.metrics(run_dir), "a", encoding="utf-8")

    def write(self, lines: list[dict[str, Any]]) -> None:
        self._fh.write("".join(records.json_text(_finite_or_none(r)) + "\n" for r in lines))
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _finite_or_none(record: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinity are not JSON: a non-finite number is written as null."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}


def truncate_metrics(run_dir: Path, last_step: int) -> None:
    """On resume, drop records past the checkpoint (those steps are trained again) and any test record
    (the final test runs again; a kill after its record but before the final status left one behind)."""
    kept = [r for r in read_metrics(run_dir) if r["step"] <= last_step and r["kind"] != "test"]
    # Plain json.dumps, not json_text: an old record read back may hold NaN, which must not stop a resume.
    text = "".join(json.dumps(r) + "\n" for r in kept)
    write_atomically(layout.metrics(run_dir), lambda tmp: tmp.write_text(text, encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# Renaming and deleting (dashboard side)
# ---------------------------------------------------------------------------------------------

def rename_run(runs_dir: str | Path, run_id: str, name: str) -> None:
    """Give the run a new display name (its meta.json only); a link is refused by run_path."""
    path = run_path(runs_dir, run_id)
    if not path.is_dir():
        raise RunError(f"Run {run_id} does not exist (it may have been deleted).")
    meta = records.read_json(layout.meta(path)) or {}
    meta["name"] = clean_name(name)
    records.write_json(layout.meta(path), meta)


def delete_run(runs_dir: str | Path, run_id: str) -> None:
    """Remove the run's folder; an entry that is a link loses the link only, never what it points to."""
    entry = run_entry(runs_dir, run_id)
    if entry.is_symlink():
        entry.unlink()
        return
    if summarize_run(entry).state == RunState.RUNNING:
        raise RunError(f"Run {run_id} is still training: stop it before deleting it.")
    shutil.rmtree(entry)  # removes links inside the run, never their targets


# ---------------------------------------------------------------------------------------------
# What can be done with a run: one answer for the job manager, the command line and the pages
# ---------------------------------------------------------------------------------------------

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
    if summary.state != RunState.QUEUED:
        return f"Run {summary.run_id} is {summary.state}; only a queued run can be handed over to train."
    return None


def reset_for_restart(run_dir: Path) -> None:
    """Clear what a run wrote before its first checkpoint (partial metrics, epoch predictions) to train it anew."""
    write_atomically(layout.metrics(run_dir), lambda tmp: tmp.write_text("", encoding="utf-8"))
    shutil.rmtree(layout.predictions_dir(run_dir), ignore_errors=True)
    layout.test_summary(run_dir).unlink(missing_ok=True)
    update_status(run_dir, state=RunState.QUEUED, epoch=0, step=0, progress=0.0, error=None, best_val_acc=None,
                  test_acc=None, started_at=None, finished_at=None)
