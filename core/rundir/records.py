"""The run's JSON files: one validating reader per small file, every field checked for type and range where
it is read, and the one atomic JSON writer.

The run folder is written by the engine, but it is also copied between machines, edited by hand and
cut short by full disks. Whatever is on disk, the readers here hand the pages only values of the type
and range the format promises:

- `check_status`, `check_meta`, `check_config` raise `FileDamaged` (one sentence naming the file, the
  field, what it should be and what it was) and the run is listed as damaged with that sentence;
- `read_metrics` skips a record that is torn, garbage or holds a wrongly typed field, and keeps the rest;
- `read_test_summary` returns None for a damaged test summary (the pages fall back as if it were missing).

`write_json` writes any of them atomically; what is written when lives in core.rundir.lifecycle.
"""
from __future__ import annotations

import json
import logging
import math
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from core.rundir import layout
from core.rundir.config import TrainConfig
from core.rundir.files import FileTooLarge, NotARegularFile, read_regular_file, write_atomically
from core.rundir.state import RunState

log = logging.getLogger(__name__)

STATES = tuple(RunState)
MAX_COUNT = 2**53  # steps, epochs, pids: beyond this a float cannot hold them exactly, so no real run has them
LATEST_TIME = 7.2e9  # unix seconds, year 2198: later "times" are garbage (and overflow pandas' datetimes)
MAX_JSON_BYTES = 16 * 2**20  # config, status, meta, test summary: a few kB each; beyond this is not ours
MAX_METRICS_BYTES = 2**30  # metrics.jsonl: about 5 million records
_short = reprlib.Repr()  # quotes a bad value in a message without printing all of a 400-digit number
_short.maxstring = _short.maxother = _short.maxlong = 40


class RunError(ValueError):
    """A run id, name or file that cannot be used; the message says why in one sentence."""


class PredictionsError(RunError):
    """A saved predictions file that exists but cannot be used (torn, foreign or damaged arrays)."""


class FileDamaged(ValueError):
    """A run file that cannot be trusted; the message names the file and the field in one sentence."""


# ---------------------------------------------------------------------------------------------
# Field checks: (predicate, what the value should be, in words)
# ---------------------------------------------------------------------------------------------

Check = tuple[Callable[[Any], bool], str]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    """int or float, never bool; an int must fit a float (a 400-digit "step" does not)."""
    return (isinstance(v, float)) or (_is_int(v) and abs(v) <= MAX_COUNT)


def is_unicode(v: Any) -> bool:
    """A str that UTF-8 can carry: JSON's "\\ud800" gives Python a lone surrogate, which no page, table or
    file can hold (Streamlit, Arrow and the report raise UnicodeEncodeError on it)."""
    if not isinstance(v, str):
        return False
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _finite(v: Any) -> bool:
    return _is_number(v) and math.isfinite(v)


def _or_none(check: Check) -> Check:
    test, words = check
    return (lambda v: v is None or test(v)), f"{words} or null"


COUNT: Check = (lambda v: _is_int(v) and 0 <= v <= MAX_COUNT, "a whole number of 0 or more")
FRACTION: Check = (lambda v: _finite(v) and 0.0 <= v <= 1.0, "a number from 0 to 1")
SECONDS: Check = (lambda v: _finite(v) and v >= 0.0, "a number of seconds, 0 or more")
TIME: Check = (lambda v: _finite(v) and 0.0 <= v < LATEST_TIME, "a time in unix seconds")
NUMBER: Check = (_is_number, "a number")
TEXT: Check = (is_unicode, "text")
FLAG: Check = (lambda v: isinstance(v, bool), "true or false")
EPOCH: Check = (lambda v: _finite(v) and 0.0 <= v <= MAX_COUNT, "an epoch number of 0 or more")
STATE: Check = (lambda v: v in STATES, f"one of {', '.join(STATES)}")

STATUS_FIELDS: dict[str, Check] = {
    "state": STATE, "epoch": COUNT, "epochs": _or_none(COUNT), "step": COUNT, "total_steps": _or_none(COUNT),
    "progress": FRACTION, "eta_seconds": _or_none(SECONDS), "created_at": _or_none(TIME),
    "started_at": _or_none(TIME), "finished_at": _or_none(TIME), "heartbeat": _or_none(TIME),
    "device": _or_none(TEXT), "error": _or_none(TEXT), "pid": _or_none(COUNT), "host": _or_none(TEXT),
    "best_val_acc": _or_none(FRACTION), "test_acc": _or_none(FRACTION), "processes": _or_none(COUNT),
}
CLASS_NAMES: Check = (lambda v: isinstance(v, list) and len(v) >= 2 and all(isinstance(n, str) for n in v)
                      and len(set(v)) == len(v), "a list of at least 2 different class names")
META_FIELDS: dict[str, Check] = {"name": TEXT, "created_at": _or_none(TIME), "classes": CLASS_NAMES,
                                 "sweep": TEXT, "trial": COUNT}
RECORD_KINDS = ("train", "val", "test")  # metrics.jsonl: one JSON object a line, told apart by "kind"
RECORD_FIELDS: dict[str, Check] = {  # checked when present; only "step" is required (resume trims by it)
    "step": COUNT, "epoch": EPOCH, "loss": NUMBER, "acc": FRACTION, "lr": NUMBER, "val_loss": NUMBER,
    "val_acc": FRACTION, "test_loss": NUMBER, "test_acc": FRACTION, "seconds": SECONDS,
    "images_per_s": _or_none(SECONDS), "time": TIME,
}
TEST_SUMMARY_FIELDS: dict[str, Check] = {
    "accuracy": FRACTION, "loss": NUMBER, "images": _or_none(COUNT), "tta": _or_none(FLAG),
    "seconds": _or_none(SECONDS), "early_stopped": _or_none(FLAG),
}


def _problem(data: Mapping[str, Any], checks: Mapping[str, Check]) -> str | None:
    """The first field of `data` that fails its check, as "field should be ..., got ...", else None."""
    for name, (test, words) in checks.items():
        if name in data and not test(data[name]):
            return f"{name} should be {words}, got {_short.repr(data[name])}"
    return None


def _check(file: str, data: Any, checks: Mapping[str, Check]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise FileDamaged(f"{file} is damaged: it should hold a JSON object, got {_short.repr(data)}.")
    problem = _problem(data, checks)
    if problem:
        raise FileDamaged(f"{file} is damaged: {problem}.")
    return data


# ---------------------------------------------------------------------------------------------
# The small JSON files
# ---------------------------------------------------------------------------------------------

def load_json(path: Path) -> Any:
    """The parsed JSON of `path`; FileNotFoundError when absent, FileDamaged when unreadable or not JSON.

    Only a regular file of at most MAX_JSON_BYTES is read: a FIFO, socket or device under the name is
    damaged, never opened (a FIFO would block every page)."""
    try:
        return json.loads(read_regular_file(path, MAX_JSON_BYTES).decode("utf-8"))
    except FileNotFoundError:
        raise
    except NotARegularFile as exc:
        raise FileDamaged(f"{path.name} is damaged: {exc.strerror}; only a regular file is read.") from None
    except FileTooLarge:
        raise FileDamaged(f"{path.name} is damaged: it is larger than the {MAX_JSON_BYTES // 2**20} MiB a run's "
                          "small file may hold, so it is not read.") from None
    except (OSError, ValueError, RecursionError) as exc:  # torn, not UTF-8, not JSON, absurdly nested
        log.info("%s: %r", path, exc)
        raise FileDamaged(f"{path.name} is damaged: it is not readable JSON (it may have been cut short).") from None


def read_json(path: Path) -> dict[str, Any] | None:
    """The object in `path`, or None when it is missing or unreadable (the engine's own merge of status)."""
    try:
        data = load_json(path)
    except (FileNotFoundError, FileDamaged):
        return None
    return data if isinstance(data, dict) else None


def json_text(data: Any, indent: int | None = None) -> str:
    """`data` as JSON the way every run file holds it: numpy numbers as plain numbers, NaN refused."""
    return json.dumps(data, indent=indent, allow_nan=False, default=_json_default)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomic JSON. No fsync: the rename is atomic for every reader and survives a killed process; the
    status is rewritten every second, and an fsync each time would cost more than it protects."""
    text = json_text(data, indent=1)  # fails before touching the disk
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def check_status(data: Any) -> dict[str, Any]:
    status = _check(layout.STATUS, data, STATUS_FIELDS)
    if "state" not in status:
        raise FileDamaged(f"{layout.STATUS} is damaged: state is missing.")
    return status


def check_meta(data: Any) -> dict[str, Any]:
    return _check(layout.META, data, META_FIELDS)


def check_config(data: Any) -> dict[str, Any]:
    """The config as TrainConfig would rebuild it (every field, defaults filled in); keys of other versions are ignored."""
    if not isinstance(data, dict):
        raise FileDamaged(f"{layout.CONFIG} is damaged: it should hold a JSON object, got {_short.repr(data)}.")
    known = {f.name for f in fields(TrainConfig)}
    try:
        return TrainConfig.from_dict({k: v for k, v in data.items() if k in known}).to_dict()
    except (ValueError, TypeError) as exc:
        raise FileDamaged(f"{layout.CONFIG} is damaged: {str(exc).rstrip('.')}.") from None


def read_test_summary(run_dir: Path) -> dict[str, Any] | None:
    """test_summary.json with checked fields, or None when it is missing or damaged."""
    try:
        summary = _check(layout.TEST_SUMMARY, load_json(layout.test_summary(run_dir)), TEST_SUMMARY_FIELDS)
    except FileNotFoundError:
        return None
    except FileDamaged as exc:
        log.warning("%s: %s", run_dir.name, exc)
        return None
    per_class = summary.get("per_class_accuracy")
    valid = isinstance(per_class, dict) and all(v is None or FRACTION[0](v) for v in per_class.values())
    return {**summary, "per_class_accuracy": per_class if valid else {}}


# ---------------------------------------------------------------------------------------------
# metrics.jsonl
# ---------------------------------------------------------------------------------------------

def check_record(record: Any) -> dict[str, Any] | None:
    """The record when every field it has is of its type and range, else None (the line is skipped)."""
    if not isinstance(record, dict) or record.get("kind") not in RECORD_KINDS or "step" not in record:
        return None
    return None if _problem(record, RECORD_FIELDS) else record


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Every valid record of metrics.jsonl, in order; a torn, garbage or wrongly typed line costs that line only."""
    try:
        text = read_regular_file(layout.metrics(run_dir), MAX_METRICS_BYTES).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:  # a FIFO, a device, a file beyond the cap, unreadable: no curves rather than a hang
        log.warning("%s: %s not read: %s", run_dir.name, layout.METRICS, exc.strerror or exc)
        return []
    records = []
    for line in text.splitlines():
        try:
            record = check_record(json.loads(line))
        except (ValueError, RecursionError):
            continue
        if record is not None:
            records.append(record)
    return records
