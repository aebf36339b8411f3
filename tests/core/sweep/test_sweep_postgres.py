"""A sweep whose study lives in PostgreSQL, as users who spread a sweep over machines run it.

The `postgres` fixture starts a private server of Debian's `postgresql` (installed by .ci/run): initdb into
a fresh folder, listening on a free port of 127.0.0.1 only, its socket in that folder, with trust
authentication for the local user `postgres`; it is stopped and removed after the module. Where it cannot
start (no PostgreSQL, no `postgres` user to run it as root), the tests that need it are skipped with a
sentence saying why. Workers are real `python -m core.sweep work` processes on the tiny synthetic recipe.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.sweep import Param, SweepError, create_sweep, load_sweep, read_results
from tests import REPO
from tests.helpers import tiny_config

LR = [Param("lr", 1e-3, 1e-2, log=True)]
DATABASE = "sweeps"


def _bin_dir() -> Path | None:
    """The newest of Debian's /usr/lib/postgresql/<version>/bin, else the folder of an initdb on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: _version(Path(p).parts[4]))
    initdb = found[-1] if found else shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _version(text: str) -> list[int]:
    return [int(n) for n in text.split(".") if n.isdigit()]


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A private PostgreSQL server in `folder`, run as `postgres` when this process is root (initdb refuses root)."""

    def __init__(self, bin_dir: Path, folder: Path):
        self.bin_dir, self.folder, self.port = bin_dir, folder, _free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def run(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, str(self.bin_dir / tool), *args], capture_output=True, text=True,
                              timeout=timeout, cwd=self.folder)

    def pg_ctl(self, action: str, *args: str) -> subprocess.CompletedProcess:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.folder}"
        return self.run("pg_ctl", action, "-D", str(self.folder / "data"), "-l", str(self.folder / "log"),
                        "-o", options, "-w", "-t", "60", *args)

    def start(self) -> str | None:
        """Start it and make the database; None, or the sentence why it could not start."""
        if self.as_user:
            shutil.chown(self.folder, "postgres")
        steps = [("initdb", ["-D", str(self.folder / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
                 ("pg_ctl", None), ("createdb", ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", DATABASE])]
        for tool, args in steps:
            done = self.pg_ctl("start") if args is None else self.run(tool, *args)
            if done.returncode != 0:
                log = (self.folder / "log").read_text()[-300:] if (self.folder / "log").exists() else ""
                return f"PostgreSQL's {tool} failed: {(done.stderr or done.stdout).strip()[-300:]} {log}".strip()
        return None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def sql(self, statement: str) -> str:
        done = self.run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", DATABASE,
                        "-At", "-c", statement)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


@pytest.fixture(scope="module")
def postgres() -> Iterator[Server]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's postgresql package).")
    if os.geteuid() == 0 and (shutil.which("runuser") is None or not _has_user("postgres")):
        pytest.skip("PostgreSQL refuses to run as root, and there is no postgres user (or runuser) to run it as.")
    folder = Path(tempfile.mkdtemp(prefix="sweep-postgres-"))  # not under pytest's root-only tmp folders
    server = Server(bin_dir, folder)
    problem = server.start()
    try:
        if problem:
            pytest.skip(problem)
        yield server
    finally:
        server.run("pg_ctl", "stop", "-D", str(folder / "data"), "-m", "immediate", "-w")
        shutil.rmtree(folder, ignore_errors=True)


def _workers(runs_dir: Path, sweep_id: str, count: int) -> list[subprocess.Popen]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two workers share the CPU
    return [subprocess.Popen([sys.executable, "-m", "core.sweep", "work", "--sweep", sweep_id, "--device", "cpu",
                              "--runs-dir", str(runs_dir)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True) for _ in range(count)]


def _wait(workers: list[subprocess.Popen], timeout: float = 300) -> list[tuple[int, str]]:
    """Each worker's exit status and stderr; killed after `timeout` seconds."""
    ended = []
    try:
        for w in workers:
            _, err = w.communicate(timeout=timeout)
            ended.append((w.returncode, err))
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    return ended


def _trained(stderr: str) -> int:
    line = next(line for line in stderr.splitlines() if line.startswith("this worker trained "))
    return int(line.split()[3])


def test_two_workers_share_a_postgresql_sweep_to_its_trial_count(postgres, tmp_path):
    sweep = create_sweep(tmp_path, "on postgres", tiny_config(epochs=2), LR, trials=6, pruner="none",
                         storage=postgres.url)
    assert load_sweep(tmp_path, sweep.sweep_id).storage == postgres.url
    assert not (sweep.path / "journal.log").exists()
    ended = _wait(_workers(tmp_path, sweep.sweep_id, 2))
    assert [code for code, _ in ended] == [0, 0], ended
    assert sum(_trained(err) for _, err in ended) == 6
    results = read_results(load_sweep(tmp_path, sweep.sweep_id), tmp_path)
    assert len(results.trials) == 6 and results.count("completed") == 6 and results.finished
    assert postgres.sql(f"SELECT count(*) FROM trials JOIN studies USING (study_id) "
                        f"WHERE study_name = '{sweep.sweep_id}'") == "6"


def _running_trials(server: Server, sweep_id: str) -> int:
    return int(server.sql(f"SELECT count(*) FROM trials JOIN studies USING (study_id) "
                          f"WHERE study_name = '{sweep_id}' AND state = 'RUNNING'"))


def test_a_dropped_connection_mid_sweep_costs_at_most_the_trials_in_flight(postgres, tmp_path):
    trials = 8
    sweep = create_sweep(tmp_path, "restarted", tiny_config(epochs=3), LR, trials=trials, pruner="none",
                         storage=postgres.url)
    workers = _workers(tmp_path, sweep.sweep_id, 2)
    try:
        deadline = time.monotonic() + 120
        while _running_trials(postgres, sweep.sweep_id) < 1:
            assert time.monotonic() < deadline, "no trial started"
            time.sleep(0.2)
        time.sleep(1.0)  # into the trials' training
        restarted = postgres.pg_ctl("restart", "-m", "fast")  # every connection dropped, refused until it is back
        assert restarted.returncode == 0, restarted.stderr
        ended = _wait(workers)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    if any(code != 0 for code, _ in ended):  # a worker the drop ended: a new one carries the sweep on
        assert _wait(_workers(tmp_path, sweep.sweep_id, 1))[0][0] == 0
    results = read_results(load_sweep(tmp_path, sweep.sweep_id), tmp_path)
    assert len(results.trials) == trials and results.finished, [(t.number, t.state) for t in results.trials]
    assert results.count("failed") <= 2, [(t.number, t.state, t.error) for t in results.trials]  # those in flight
    assert results.count("completed") >= trials - 2


def test_an_unreachable_postgresql_server_is_refused_at_create_in_one_sentence(tmp_path):
    url = f"postgresql+psycopg://nobody@127.0.0.1:{_free_port()}/sweeps"
    with pytest.raises(SweepError) as refused:
        create_sweep(tmp_path, "nowhere", tiny_config(), LR, trials=2, storage=url)
    sentence = str(refused.value)
    assert sentence.startswith(f"Cannot use the storage '{url}': OperationalError: connection") and "\n" not in sentence
    assert "refused" in sentence and not (tmp_path / "sweeps").exists()
