"""A sweep's database, when its study lives in one instead of the journal file: the URL checked, then opened.

sweep.json may name any database Optuna's RDBStorage takes (SQLite, PostgreSQL, MySQL), so that workers on
several machines share one study. `url_problem` says, without touching the disk or the network, what makes
a URL unusable by workers elsewhere: not a URL, an unknown kind of database, an in-memory SQLite database
(each process would have its own, empty), a relative SQLite path (a worker started in another folder would
open another file). `absolute_url` makes a relative SQLite path absolute when a sweep is created;
`open_database` connects (a few seconds at most) and turns any driver's failure into one sentence; once
connected, a dropped connection is replaced, and a server that restarts is waited for (RECONNECT_S).
"""
from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from sqlalchemy.engine import URL, make_url

from core.sweep.space import SweepError, quote

DATABASES = ("sqlite", "postgresql", "mysql")  # what Optuna's RDBStorage is built and tested for
CONNECT_TIMEOUT_S = 5  # an unreachable server is refused after this long, not after the system's minutes
RECONNECT_S, RECONNECT_PAUSE_S = 60.0, 0.5  # a server that answered once is waited for this long when it drops
log = logging.getLogger(__name__)
EXAMPLE = "postgresql://user@host/db or sqlite:////absolute/path.db"


def shown(url: Any) -> str:
    """The URL for a message: its password hidden, a long or foreign value shortened."""
    try:
        text = make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 (not a URL at all: quoted as it is)
        return quote(url)
    return repr(text) if len(text) <= 200 else quote(text)


def _parsed(url: Any) -> URL | str:
    """The parsed URL, or a phrase saying why it is not one Optuna could use."""
    if not isinstance(url, str) or not url.strip():
        return f"it should be a database URL such as {EXAMPLE}"
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 (sqlalchemy's ArgumentError, or a ValueError for a bad port)
        return f"it is not a database URL (write e.g. {EXAMPLE})"
    if parsed.get_backend_name() not in DATABASES:
        return f"it names a {parsed.get_backend_name()} database; a sweep can use {', '.join(DATABASES)}"
    return parsed


def _sqlite_file(parsed: URL) -> str | None:
    """The file a SQLite URL names, or None for an in-memory database."""
    database = parsed.database or ""
    if database.startswith("file:"):  # an SQLite URI: file:path?mode=memory
        database = database[len("file:"):]
    if not database or database == ":memory:" or parsed.query.get("mode") == "memory":
        return None
    return database


def url_problem(url: Any) -> str | None:
    """Why the storage URL `url` cannot hold a sweep shared by its workers (a phrase), else None."""
    parsed = _parsed(url)
    if isinstance(parsed, str):
        return parsed
    if parsed.get_backend_name() == "sqlite":
        file = _sqlite_file(parsed)
        if file is None:
            return ("it keeps the study in memory, where no worker can reach it; give a file "
                    "(sqlite:////absolute/path.db) or a database server")
        if not Path(file).is_absolute():
            return ("its SQLite path is relative, so a worker started in another folder would open another "
                    "file; write it absolute (sqlite:////absolute/path.db)")
    return None


def absolute_url(url: str) -> str:
    """`url` with a relative SQLite path made absolute against this process's folder (others unchanged)."""
    parsed = _parsed(url)
    if isinstance(parsed, str) or parsed.get_backend_name() != "sqlite":
        return url
    file = _sqlite_file(parsed)
    if file is None or Path(file).is_absolute():
        return url
    return parsed.set(database=str(Path(file).resolve())).render_as_string(hide_password=False)


def missing_file(url: str) -> str | None:
    """For a SQLite URL whose file is gone (moved or deleted), that file; else None. Opening it would make
    a new, empty database in its place."""
    parsed = _parsed(url)
    if isinstance(parsed, str) or parsed.get_backend_name() != "sqlite":
        return None
    file = _sqlite_file(parsed)
    return file if file is not None and not Path(file).is_file() else None


def refusal(url: str, problem: str) -> SweepError:
    return SweepError(f"Cannot use the storage {shown(url)}: {problem.rstrip('.')}.")


def _engine_kwargs(url: str) -> dict[str, Any]:
    """Ping a pooled connection before use (a server restarted since is reconnected to, not an error), and
    give up connecting after CONNECT_TIMEOUT_S."""
    backend = make_url(url).get_backend_name()
    connect = {"connect_timeout": CONNECT_TIMEOUT_S} if backend in ("postgresql", "mysql") else {}
    return {"pool_pre_ping": True, "connect_args": connect}


def _driver_error(exc: BaseException) -> str:
    """The first line of a driver's error (they span several lines and add links)."""
    if isinstance(exc, (ImportError, sqlalchemy.exc.NoSuchModuleError)):
        return 'this machine has no driver for it (for PostgreSQL: pip install "psycopg[binary]")'
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else 'no reason given'}"


def open_database(url: str) -> optuna.storages.RDBStorage:
    """The storage of `url`, connected: one per database in this process, so its connection pool is reused
    (a SQLite file replaced by another gets a storage of its own). SweepError when the URL is unusable or
    the database cannot be reached."""
    problem = url_problem(url)
    if problem:
        raise refusal(url, problem)
    return _connected(url, _file_identity(url))


def _file_identity(url: str) -> tuple[int, int] | None:
    """A SQLite file's device and inode (None for a server, or a file not made yet)."""
    parsed = make_url(url)
    file = _sqlite_file(parsed) if parsed.get_backend_name() == "sqlite" else None
    try:
        info = Path(file).stat() if file else None
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if info else None


@functools.lru_cache(maxsize=32)
def _connected(url: str, identity: tuple[int, int] | None) -> optuna.storages.RDBStorage:
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url))
    except Exception as exc:  # noqa: BLE001 (any driver's error: the URL is refused in one sentence)
        raise refusal(url, _driver_error(exc)) from None
    if make_url(url).get_backend_name() != "sqlite":
        _reconnect_patiently(storage.engine)
    return storage


def _reconnect_patiently(engine: sqlalchemy.engine.Engine) -> None:
    """Once a server has answered, a failed (re)connection is retried for RECONNECT_S: a server restarting
    or a network blip then costs a worker only the statement it was running, not the trial or the worker."""
    @sqlalchemy.event.listens_for(engine, "do_connect")
    def connect(dialect, record, cargs, cparams):  # noqa: ANN001 (SQLAlchemy's event signature)
        deadline = time.monotonic() + RECONNECT_S
        while True:
            try:
                return dialect.connect(*cargs, **cparams)
            except dialect.loaded_dbapi.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("the sweep's database did not answer (%s); trying again", str(exc).strip()[:200])
                time.sleep(RECONNECT_PAUSE_S)


def open_study_database(url: str, study_name: str) -> optuna.storages.RDBStorage:
    """The storage of `url`, which must hold the study `study_name` (not deleted, not another database)."""
    missing = missing_file(url)
    if missing:
        raise refusal(url, f"its database file {missing} is missing (moved or deleted)")
    database = open_database(url)
    try:
        database.get_study_id_from_name(study_name)
    except KeyError:
        raise refusal(url, f"the database holds no study {study_name} (it was emptied or replaced)") from None
    except Exception as exc:  # noqa: BLE001 (the server went away since it was opened)
        raise refusal(url, _driver_error(exc)) from None
    return database
