"""A sweep's study as a hostile user or a crash leaves it: damaged journal.log files, crafted trial
attributes, a read-only runs folder and lock files left by killed processes. Each costs one sentence about
that sweep (or that trial) on the Sweeps page and in `python -m core.sweep`, never a traceback or a hang.

The sweeps here are made without training: a template with one completed trial and one running trial
(whose worker is this live test process) is copied for each case, so every case opens its study afresh,
as a new dashboard process would.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.jobs import JobManager
from core.rundir import catalog, lifecycle
from core.sweep import Param, SweepError, create_sweep, load_sweep, read_results
from core.sweep.__main__ import main as sweep_cli
from core.sweep.study import JOURNAL_FILE, LOCK_FILE
from tests import REPO
from tests.helpers import open_view, rerun, shown, tiny_config

SPACE = [Param("lr", 1e-4, 1e-1, log=True), Param("optimizer", choices=("adam", "sgd"))]


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, str]:
    """A runs folder with one sweep: trial #0 completed (its run exists), trial #1 running in this process."""
    runs_dir = tmp_path_factory.mktemp("template") / "runs"
    sweep = create_sweep(runs_dir, "hurt", tiny_config(), SPACE, trials=4, sampler="random")
    study = sweep.open_study()
    for number in (0, 1):
        trial = study.ask()
        for param in SPACE:
            param.suggest(trial)
        trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
        run_dir = lifecycle.create_run(runs_dir, tiny_config().to_dict(), name=f"hurt #{number}",
                                  sweep=(sweep.sweep_id, number))
        trial.set_user_attr("run_id", run_dir.name)
        if number == 0:
            study.tell(trial, 0.5)
    return runs_dir, sweep.sweep_id


@pytest.fixture
def world(template, tmp_path, monkeypatch) -> tuple[Path, str]:
    """A copy of the template that the dashboard looks at."""
    source, sweep_id = template
    runs_dir = tmp_path / "runs"
    shutil.copytree(source, runs_dir)
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(runs_dir))
    return runs_dir, sweep_id


def journal_of(world) -> Path:
    runs_dir, sweep_id = world
    return runs_dir / "sweeps" / sweep_id / JOURNAL_FILE


def append_line(journal: Path, record: dict) -> None:
    with open(journal, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def set_attr(journal: Path, trial: int, key: str, value) -> None:
    """What a crafted `trial.set_user_attr(key, value)` writes (trial ids are trial numbers here)."""
    append_line(journal, {"op_code": 8, "worker_id": "crafted", "trial_id": trial, "user_attr": {key: value}})


def cli(world, command: str, *extra: str) -> int:
    runs_dir, sweep_id = world
    code = sweep_cli([command, "--sweep", sweep_id, "--runs-dir", str(runs_dir), *extra])
    return code


# ---------------------------------------------------------------------------------------------
# Finding 9: a damaged journal.log is one sentence for that sweep
# ---------------------------------------------------------------------------------------------

def _insert_garbage(journal: Path) -> None:
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:1] + [b"hello, not json\n"] + lines[1:]))


def _another_sweeps_journal(journal: Path) -> None:
    other = create_sweep(journal.parents[2], "other", tiny_config(), SPACE, trials=2)
    shutil.copyfile(other.path / JOURNAL_FILE, journal)
    shutil.rmtree(other.path)


def _a_directory(journal: Path) -> None:
    journal.unlink()
    journal.mkdir()


JOURNAL_DAMAGE = {
    "empty": (lambda j: j.write_bytes(b""), "its journal.log is empty"),
    "deleted": (lambda j: j.unlink(), "its journal.log is missing"),
    "another sweep's": (_another_sweeps_journal, "its study is not in its storage (it holds the study"),
    "a garbage line": (_insert_garbage, "its journal.log is damaged: a line is not readable JSON"),
    "random bytes": (lambda j: j.write_bytes(bytes(range(256)) * 3 + b"\n"), "a line is not readable JSON"),
    "a directory": (_a_directory, "its journal.log is not a regular file"),
    "an unknown op code": (lambda j: append_line(j, {"op_code": 99, "worker_id": "x"}),
                           "a line's op_code is not one Optuna writes"),
    "a record without op code": (lambda j: append_line(j, {"worker_id": "x"}),
                                 "a line is not a record Optuna writes (KeyError: 'op_code')"),
}


@pytest.mark.parametrize("damage", JOURNAL_DAMAGE, ids=list(JOURNAL_DAMAGE))
def test_a_damaged_journal_is_one_sentence_on_the_page_and_from_status_and_work(world, capsys, damage):
    change, sentence = JOURNAL_DAMAGE[damage]
    runs_dir, sweep_id = world
    change(journal_of(world))
    with pytest.raises(SweepError, match=f"^Sweep {sweep_id} cannot be read: ") as refused:
        read_results(load_sweep(runs_dir, sweep_id), runs_dir)
    assert sentence in str(refused.value)

    at = open_view("views/sweeps.py")
    assert [shown(e.value) for e in at.error] == [str(refused.value)]
    assert at.subheader[0].value == "hurt"  # the sweep is still listed and picked, with its sentence

    capsys.readouterr()
    for command in (["status"], ["work", "--device", "cpu"]):
        assert cli(world, *command) == 1
        err = capsys.readouterr().err.strip()
        assert err == f"error: {refused.value}", (command, err)
    assert not [r for r in catalog.list_runs(runs_dir) if r.name.startswith("hurt #2")]  # no trial started


def test_status_of_a_damaged_journal_prints_one_line_and_no_traceback(world):
    runs_dir, sweep_id = world
    _insert_garbage(journal_of(world))
    done = subprocess.run([sys.executable, "-m", "core.sweep", "status", "--sweep", sweep_id, "--runs-dir",
                           str(runs_dir)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"error: Sweep {sweep_id} cannot be read: its journal.log is damaged: "
                                                "a line is not readable JSON (JSONDecodeError: Expecting value: "
                                                "line 1 column 1 (char 0)); only the lines Optuna writes belong there."]


# ---------------------------------------------------------------------------------------------
# Finding 10: crafted trial attributes are a problem sentence on that trial
# ---------------------------------------------------------------------------------------------

CRAFTED = {
    "worker is text": ("worker", "abc", "its attribute 'worker' is 'abc', not {'host': text, 'pid': a process id}"),
    "worker is a list": ("worker", [1, 2], "its attribute 'worker' is [1, 2]"),
    "worker's pid is huge": ("worker", {"host": socket.gethostname(), "pid": 10**30}, "its attribute 'worker' is"),
    "run id is a number": ("run_id", 7, "its attribute 'run_id' is 7, not a run id (text)"),
    "run id is a list": ("run_id", ["a"], "its attribute 'run_id' is ['a']"),
    "error is a dict": ("error", {"a": 1}, "its attribute 'error' is {'a': 1}, not text"),
}


@pytest.mark.parametrize("case", CRAFTED, ids=list(CRAFTED))
def test_a_crafted_trial_attribute_is_a_problem_on_that_trial_not_a_page_crash(world, case):
    key, value, problem = CRAFTED[case]
    runs_dir, sweep_id = world
    set_attr(journal_of(world), 1, key, value)  # on the running trial, which the page checks for a dead worker
    trials = {t.number: t for t in read_results(load_sweep(runs_dir, sweep_id), runs_dir).trials}
    assert trials[1].error.startswith("Trial #1 is damaged: ") and problem in trials[1].error
    assert trials[0].error is None and trials[0].value == 0.5  # the other trial as it was

    at = open_view("views/sweeps.py")
    table = at.dataframe[0].value
    assert list(table["Trial"]) == [0, 1]
    assert problem in table["Problem"][1] and not table["Problem"][0]


def test_a_setting_outside_the_space_is_a_problem_and_left_out(world):
    runs_dir, sweep_id = world
    journal = journal_of(world)
    append_line(journal, {"op_code": 5, "worker_id": "x", "trial_id": 1, "param_name": "lr",
                          "param_value_internal": 50.0, "distribution": json.dumps(
                              {"name": "FloatDistribution", "attributes": {"low": 1e-5, "high": 100.0, "log": True,
                                                                           "step": None}})})
    [_, crafted] = sorted(read_results(load_sweep(runs_dir, sweep_id), runs_dir).trials, key=lambda t: t.number)
    assert "its lr is 50.0, outside the sweep's lr from 0.0001 to 0.1" in crafted.error
    assert "lr" not in crafted.params
    assert not open_view("views/sweeps.py").exception


# ---------------------------------------------------------------------------------------------
# Finding 4: a read-only runs folder is shown read-only; Start and Stop answer in one sentence
# ---------------------------------------------------------------------------------------------

def _dead_worker_on_trial_1(world) -> None:
    """Trial #1's worker was killed mid-trial: its run reads "interrupted", so the next read marks it failed."""
    runs_dir, _ = world
    dead = _dead_pid()
    set_attr(journal_of(world), 1, "worker", {"host": socket.gethostname(), "pid": dead})
    [run] = [r for r in catalog.list_runs(runs_dir) if r.trial == 1]
    lifecycle.update_status(run.path, state="running", host=socket.gethostname(), pid=dead)
    assert catalog.summarize_run(run.path).state == "interrupted"


def _read_only_lock_files(monkeypatch) -> None:
    """Lock files cannot be made, as on a read-only folder (Optuna's lock and ours both use os.open)."""
    real_open = os.open

    def refusing_open(path, flags, *args, **kwargs):
        if str(path).endswith(".lock"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)
    monkeypatch.setattr(os, "open", refusing_open)


def _refuse(self, *args):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS), "workers")


WRITABLE = "point CIFAR_RUNS_DIR (or --runs-dir) at a folder you can write to"
READ_ONLY_NOTE = "Trials whose worker died are not marked failed: this runs folder is read-only here."


def test_a_read_only_folder_shows_the_sweep_read_only_and_start_and_stop_answer_in_a_sentence(world, monkeypatch):
    runs_dir, sweep_id = world
    _dead_worker_on_trial_1(world)
    _read_only_lock_files(monkeypatch)
    monkeypatch.setattr(JobManager, "start_sweep_workers", _refuse)
    monkeypatch.setattr(JobManager, "stop_sweep", _refuse)
    at = open_view("views/sweeps.py")
    assert [shown(w.value) for w in at.warning] == [READ_ONLY_NOTE]
    assert list(at.dataframe[0].value["State"]) == ["completed", "running"]  # not reaped: nothing written

    at.button(key="sweeps_start").click()
    rerun(at)
    assert [shown(e.value) for e in at.error] == ["Starting the workers failed: could not write workers: the runs "
                                                  f"folder is on a read-only file system; {WRITABLE}."]
    at.button(key="sweeps_stop").click()
    rerun(at)
    assert [shown(e.value) for e in at.error] == ["Asking the workers to stop failed: could not write workers: the "
                                                  f"runs folder is on a read-only file system; {WRITABLE}."]


@pytest.fixture
def read_only_world(world, tmp_path):
    """The world on a real read-only mount (a tmpfs remounted read-only); skipped where mounting is not allowed."""
    runs_dir, sweep_id = world
    _dead_worker_on_trial_1(world)
    mount = tmp_path / "mnt"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root): the read-only folder is tested with a patched os.open")
    try:
        shutil.copytree(runs_dir, mount / "runs")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True, capture_output=True)
        yield mount / "runs", sweep_id
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_real_read_only_folder_is_read_and_its_buttons_answer_in_a_sentence(read_only_world, monkeypatch, capsys):
    runs_dir, sweep_id = read_only_world
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(runs_dir))
    assert (runs_dir / "sweeps" / sweep_id / f"{JOURNAL_FILE}.lock").exists() is False
    results = read_results(load_sweep(runs_dir, sweep_id), runs_dir)
    assert results.read_only == READ_ONLY_NOTE and len(results.trials) == 2

    at = open_view("views/sweeps.py")
    assert not at.exception and [shown(w.value) for w in at.warning] == [READ_ONLY_NOTE]
    at.button(key="sweeps_start").click()
    rerun(at)
    assert len(at.error) == 1 and shown(at.error[0].value).startswith("Starting the workers failed: could not write ")
    at.button(key="sweeps_stop").click()
    rerun(at)
    assert [shown(e.value) for e in at.error] == ["Asking the workers to stop failed: could not write stop: the runs "
                                                  f"folder is on a read-only file system; {WRITABLE}."]
    capsys.readouterr()
    assert cli(read_only_world, "status") == 0
    assert READ_ONLY_NOTE in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Finding 16: a lock file left by a killed process is taken over, not waited out
# ---------------------------------------------------------------------------------------------

def _finishes(call, timeout: float = 10.0):
    """call() in a thread; its result, or a failure if it is still waiting after `timeout` s (Optuna's own
    lock waited 30 s for a lock file whose holder was gone)."""
    done = []
    thread = threading.Thread(target=lambda: done.append(call()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert done, f"still waiting after {timeout:.0f} s"
    return done[0]


@pytest.mark.parametrize("holder", ["", "{pid} {host}"], ids=["empty (Optuna's kind)", "a dead process here"])
def test_a_stale_lock_costs_neither_the_page_nor_a_worker_its_grace_period(world, holder):
    runs_dir, sweep_id = world
    sweep = load_sweep(runs_dir, sweep_id)
    _dead_worker_on_trial_1(world)  # the page's read marks that trial failed: it must take the journal's lock
    text = holder.format(pid=_dead_pid(), host=socket.gethostname())
    for lock in (sweep.path / f"{JOURNAL_FILE}.lock", sweep.path / f"{LOCK_FILE}.lock"):
        lock.write_text(text)

    results = _finishes(lambda: read_results(sweep, runs_dir, with_importances=False))
    assert [t.state for t in sorted(results.trials, key=lambda t: t.number)] == ["completed", "failed"]

    from core.sweep.worker import _next_trial  # what a worker does between trials, under the trial lock
    trial = _finishes(lambda: _next_trial(sweep.open_study(), sweep))
    assert trial is not None and trial.number == 2
    assert not (sweep.path / f"{LOCK_FILE}.lock").exists() and not (sweep.path / f"{JOURNAL_FILE}.lock").exists()


def test_a_lock_held_by_a_live_process_is_waited_for(world):
    runs_dir, sweep_id = world
    lock = load_sweep(runs_dir, sweep_id).trial_lock()
    lock.acquire()  # held by this live process
    other = load_sweep(runs_dir, sweep_id).trial_lock()
    waiter = threading.Thread(target=other.acquire, daemon=True)
    waiter.start()
    waiter.join(3.0)
    assert waiter.is_alive(), "a live holder's lock was taken"
    lock.release()
    waiter.join(10.0)
    assert not waiter.is_alive()
    other.release()


# ---------------------------------------------------------------------------------------------
# Finding 11: the page reads the sweeps once per run
# ---------------------------------------------------------------------------------------------

def test_the_page_lists_the_sweeps_once_per_script_run(world, monkeypatch):
    import core.sweep
    calls = []
    real = core.sweep.list_sweeps
    monkeypatch.setattr(core.sweep, "list_sweeps", lambda folder: calls.append(folder) or real(folder))
    at = open_view("views/sweeps.py")
    calls.clear()
    rerun(at)
    assert len(calls) == 1 and at.subheader[0].value == "hurt"


# ---------------------------------------------------------------------------------------------
# Property: whatever lines land in the journal, the page loads and status prints a sentence or the status
# ---------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=5)
trial_ids = st.sampled_from([0, 1, 2, -1]) | st.integers()
records = st.one_of(
    st.builds(lambda key, value, trial: {"op_code": 8, "worker_id": "w", "trial_id": trial,
                                         "user_attr": {key: value}},
              st.sampled_from(["worker", "run_id", "error"]), json_values, trial_ids),
    st.builds(lambda trial, step, value: {"op_code": 7, "worker_id": "w", "trial_id": trial, "step": step,
                                          "intermediate_value": value},
              trial_ids, json_values, json_values),
    st.builds(lambda trial, state, values: {"op_code": 6, "worker_id": "w", "trial_id": trial, "state": state,
                                            "values": values},
              trial_ids, st.integers(-1, 6), json_values),
    st.builds(lambda trial, name, value, dist: {"op_code": 5, "worker_id": "w", "trial_id": trial,
                                                "param_name": name, "param_value_internal": value,
                                                "distribution": dist},
              trial_ids, st.sampled_from(["lr", "optimizer", "epochs"]), json_values, json_values | st.text()),
    st.dictionaries(st.sampled_from(["op_code", "worker_id", "trial_id", "study_id", "user_attr"]), json_values),
)
lines = st.one_of(records.map(lambda r: json.dumps(r).encode()), st.binary(max_size=40))
insertions = st.lists(st.tuples(st.integers(0, 20), lines), min_size=1, max_size=4)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                               HealthCheck.too_slow])
@given(changes=insertions)
def test_whatever_lines_the_journal_holds_the_page_loads_and_status_answers(template, tmp_path_factory,
                                                                           monkeypatch, capsys, changes):
    source, sweep_id = template
    runs_dir = tmp_path_factory.mktemp("fuzz") / "runs"
    shutil.copytree(source, runs_dir)
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(runs_dir))
    journal = runs_dir / "sweeps" / sweep_id / JOURNAL_FILE
    content = journal.read_bytes().splitlines(keepends=True)
    for where, line in changes:
        content.insert(min(where, len(content)), line.replace(b"\n", b" ") + b"\n")
    journal.write_bytes(b"".join(content))

    at = open_view("views/sweeps.py")
    assert not at.exception, (changes, at.exception)
    capsys.readouterr()
    code = sweep_cli(["status", "--sweep", sweep_id, "--runs-dir", str(runs_dir)])
    out, err = capsys.readouterr()
    if code == 0:
        assert out.startswith(f"hurt ({sweep_id}): ") and not err, (out, err)
    else:
        assert code == 1 and err.startswith(f"error: Sweep {sweep_id} cannot be read") and err.count("\n") == 1, err
