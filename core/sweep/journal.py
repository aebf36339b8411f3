"""Reading a sweep's Optuna study without surprises: the journal file's checks, one storage per journal,
lock files that name their holder, and whatever the storage raises turned into one sentence.

A sweep's journal.log is a file anyone can damage (emptied, deleted, copied from another sweep, a garbage
line, random bytes, a folder in its place). Optuna replays it with code that raises KeyError, TypeError,
JSONDecodeError, AssertionError... on such input, at the first read or at any later one; `study_errors`
turns each into SweepError ("Sweep X cannot be read: its journal.log ..."), which the Sweeps page shows for
that sweep and `python -m core.sweep` prints before exiting 1. A storage URL's database errors become a
sentence the same way.

Optuna's own file lock (JournalFileOpenLock) is an empty file; one left by a killed process blocks every
writer for its 30 s grace period. `HolderLock` writes "<pid> <host>" into the file, so a lock whose holder
died on this machine is taken over at once (see its docstring for the other cases).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import BaseJournalFileLock

from core.rundir import catalog, files
from core.sweep.space import SweepError

log = logging.getLogger(__name__)

UNKNOWN_HOLDER_GRACE_S = 1.5  # an empty lock file (Optuna's own kind, or a holder killed while writing it)
MAX_KEPT_STORAGES = 32  # journals kept open in one process (the page follows one sweep at a time)
OTHER_HOST_GRACE_S = 30.0  # Optuna's default: a holder on another machine cannot be asked whether it lives


# ---------------------------------------------------------------------------------------------
# Lock files that name their holder
# ---------------------------------------------------------------------------------------------

class HolderLock(BaseJournalFileLock):
    """`<path>.lock`, made with O_EXCL (safe on NFSv3+, like Optuna's JournalFileOpenLock) and holding
    "<pid> <host>" of its holder. A lock that stays in the way is broken when its holder is a dead process
    on this machine (at once), when it names no holder and has not changed for UNKNOWN_HOLDER_GRACE_S, and
    otherwise (a holder on another machine, or a live pid that may be a reused one) when it has not changed
    for OTHER_HOST_GRACE_S, as Optuna's own lock does. Both locks guard a few milliseconds of work (appending
    a journal line; counting trials and asking for one)."""

    def __init__(self, path: str) -> None:
        self.path = path + ".lock"

    def acquire(self) -> bool:
        delay, seen = 0.001, {}  # seen: (inode, mtime) of a lock in the way -> when first seen unchanged
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if self._break_if_stale(seen):
                    continue
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
                continue
            try:
                os.write(fd, f"{os.getpid()} {socket.gethostname()}".encode())
            except OSError:  # e.g. a full disk: leave no lock behind for others to wait out
                os.close(fd)
                os.unlink(self.path)
                raise
            os.close(fd)
            return True

    def release(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:  # broken by another process that took us for dead: nothing left to free
            log.warning("the lock %s was gone when released", self.path)

    def _break_if_stale(self, seen: dict[tuple[int, int], float]) -> bool:
        """Remove the lock in the way if its holder is gone; True when it was removed (or had vanished)."""
        try:
            info, holder = os.stat(self.path), Path(self.path).read_bytes()[:300]
        except FileNotFoundError:
            return True
        first_seen = seen.setdefault((info.st_ino, info.st_mtime_ns), time.monotonic())
        if not _holder_gone(holder, time.monotonic() - first_seen):
            return False
        return self._remove_if_unchanged(info.st_ino, holder)

    def _remove_if_unchanged(self, inode: int, holder: bytes) -> bool:
        """Rename the lock aside (atomic: of several breakers one wins), then delete it if it is still the
        dead holder's; a fresh lock taken meanwhile by someone else is put back (link fails if a newer one
        exists, so a live lock is never replaced)."""
        aside = f"{self.path}.{uuid.uuid4().hex}.stale"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True
        try:
            if os.stat(aside).st_ino != inode or Path(aside).read_bytes()[:300] != holder:
                with contextlib.suppress(FileExistsError):
                    os.link(aside, self.path)
                return False
            log.warning("took over the lock %s left by %s", self.path, holder.decode(errors="replace") or "nobody")
            return True
        finally:
            os.unlink(aside)


def _holder_gone(holder: bytes, unchanged_s: float) -> bool:
    pid, _, host = holder.decode(errors="replace").partition(" ")
    if not pid.isdigit() or not host:
        return unchanged_s > UNKNOWN_HOLDER_GRACE_S
    if host == socket.gethostname() and not catalog.pid_alive(int(pid)):
        return True
    return unchanged_s > OTHER_HOST_GRACE_S  # elsewhere, or a live pid that may be a reused one


# ---------------------------------------------------------------------------------------------
# One storage per journal file
# ---------------------------------------------------------------------------------------------

_storages: dict[str, tuple[tuple[int, int], JournalStorage]] = {}  # journal -> ((device, inode), its storage)
_storages_lock = threading.Lock()


def journal_storage(journal: Path, new: bool = False) -> JournalStorage:
    """The storage of `journal`, kept per file in this process: it reads only what was appended since its
    last read, where a new one replays the whole file (the Sweeps page reads the study every 2 s). A file
    replaced by another (new inode) gets a new storage. `new`: the sweep is being created, so its journal
    is made if missing and may be empty. Call inside `study_errors`."""
    if new:
        journal.touch(exist_ok=True)
    identity = _journal_identity(journal, may_be_empty=new)
    with _storages_lock:
        kept = _storages.get(str(journal))
        if kept is not None and kept[0] == identity:
            return kept[1]
    storage = JournalStorage(JournalFileBackend(str(journal), lock_obj=HolderLock(str(journal))))
    with _storages_lock:
        if len(_storages) >= MAX_KEPT_STORAGES:
            _storages.clear()
        _storages[str(journal)] = (identity, storage)
    return storage


def forget_storage(journal: Path) -> None:
    """Drop the kept storage: after an error it has skipped the line that raised, so it must replay anew."""
    with _storages_lock:
        _storages.pop(str(journal), None)


def _journal_identity(journal: Path, may_be_empty: bool = False) -> tuple[int, int]:
    """(device, inode) of a regular, non-empty journal; SweepError otherwise. Optuna would create a missing
    journal (an empty study list) and block forever opening a FIFO, so both are refused before it looks."""
    try:
        info = journal.stat()
    except FileNotFoundError:
        raise _journal_problem(journal, "is missing (it holds the sweep's study; nothing is left to show)") from None
    if not stat.S_ISREG(info.st_mode):
        raise _journal_problem(journal, "is not a regular file")
    if info.st_size == 0 and not may_be_empty:
        raise _journal_problem(journal, "is empty: it holds no study")
    return info.st_dev, info.st_ino


def _journal_problem(journal: Path, problem: str) -> SweepError:
    return SweepError(f"Sweep {journal.parent.name} cannot be read: its {journal.name} {problem}.")


# ---------------------------------------------------------------------------------------------
# Opening and reading the study: one sentence for whatever goes wrong
# ---------------------------------------------------------------------------------------------

def load_study(sweep_id: str, storage: str | optuna.storages.BaseStorage, **options) -> optuna.Study:
    """The study `sweep_id` in `storage`; SweepError when the storage holds no such study (call inside
    `study_errors`). `options`: optuna.load_study's sampler and pruner."""
    storage = optuna.storages.get_storage(storage)
    names = [s.study_name for s in storage.get_all_studies()]
    if sweep_id not in names:
        held = f"it holds the study {names[0]!r} of another sweep" if len(names) == 1 else \
            f"it holds {len(names)} other studies" if names else "it holds no study"
        raise SweepError(f"Sweep {sweep_id} cannot be read: its study is not in its storage ({held}).")
    return optuna.load_study(study_name=sweep_id, storage=storage, **options)


@contextlib.contextmanager
def study_errors(sweep_id: str, journal: Path | None) -> Iterator[None]:
    """Run a block that opens, reads or writes the study of `sweep_id`; whatever the storage raises becomes
    SweepError in one sentence. `journal`: the sweep's journal file, None when it uses a storage URL."""
    try:
        yield
    except SweepError:
        raise
    except OSError as exc:  # before Exception: a read-only folder or a full disk is not a damaged journal
        if journal is not None:
            forget_storage(journal)
        raise SweepError(f"Sweep {sweep_id} cannot be used: "
                         f"{files.disk_error_sentence(exc, then='try again', verb='use')}.") from None
    except Exception as exc:  # noqa: BLE001 (Optuna replays any file: whatever a damaged line makes it raise)
        if journal is None:
            raise SweepError(f"Sweep {sweep_id} cannot be read from its storage: {_first_line(exc)}.") from None
        forget_storage(journal)
        raise _journal_problem(journal, f"is damaged: {_line_problem(exc)}") from None


def _line_problem(exc: Exception) -> str:
    if isinstance(exc, AssertionError):  # Optuna's replay asserts on an op_code it does not know
        return "a line's op_code is not one Optuna writes"
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)) or str(exc) == "Invalid log format.":
        return f"a line is not readable JSON ({_first_line(exc)}); only the lines Optuna writes belong there"
    return f"a line is not a record Optuna writes ({_first_line(exc)})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200].rstrip('.')}" if text else type(exc).__name__

