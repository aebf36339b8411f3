"""A sweep's own files as a hostile user leaves them: names too long for their trials, huge `--vary` numbers,
storage URLs no worker can share or that vanish, and a sweep.json damaged field by field.

Each is refused in one sentence where it is typed (create, from the command line or the form), or, once on
disk, makes the sweep "damaged" with its sentence: listed as such by `list_sweeps` and the Sweeps page,
refused by `status` and `work` in one line, never a traceback and never hidden.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from core.rundir import catalog, records
from core.sweep import DamagedSweep, Param, Sweep, SweepError, create_sweep, list_sweeps, load_sweep, parse_param, work
from core.sweep import study as sweep_study
from core.sweep.__main__ import main as sweep_cli
from core.sweep.space import MAX_WHOLE, tunable_fields
from dashboard import sweep_form
from tests import REPO
from tests.helpers import open_view, rerun, shown, tiny_config

LR = [Param("lr", 1e-5, 1e-2, log=True)]
CREATE = ["create", "--name", "s", "--data", "synthetic", "--epochs", "2"]


def cli(capsys, *argv: str) -> tuple[int, str]:
    """Run `python -m core.sweep` in this process: its exit status and stderr."""
    code = sweep_cli(list(argv))
    return code, capsys.readouterr().err.strip()


def one_sentence(err: str) -> str:
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


# --- finding 5: names sized so every trial's run name fits -------------------------------------

@pytest.mark.parametrize("length", [97, 98, 99, 100])
def test_a_name_too_long_for_its_trial_names_is_refused_at_create(tmp_path, capsys, length):
    code, err = cli(capsys, *CREATE, "--runs-dir", str(tmp_path), "--name", "n" * length, "--trials", "20",
                    "--vary", "lr=0.001:0.1")
    assert code == 1 and "A sweep name can be at most 96 characters long for 20 trials" in one_sentence(err)
    assert not (tmp_path / catalog.SWEEPS_DIR_NAME).exists()


def test_the_longest_name_allowed_names_trials_that_train(tmp_path):
    name = "n" * sweep_study.longest_name(1)  # 97 characters: "<name> #0" is 100
    sweep = create_sweep(tmp_path, name, tiny_config(epochs=1), LR, trials=1)
    assert work(tmp_path, sweep.sweep_id, "cpu") == 1
    [run] = catalog.list_runs(tmp_path)
    assert (run.state, run.name) == ("completed", f"{name} #0")


def test_the_forms_default_name_leaves_room_for_the_trial_numbers():
    space = [Param(field, choices=(0,)) for field in tunable_fields()]  # every setting: a very long default name
    name = sweep_form._default_name(space, 10_000)
    assert len(f"{name} #10000") <= catalog.MAX_NAME_LENGTH


# --- finding 6: --vary numbers within what a run accepts, stored exactly -----------------------

@pytest.mark.parametrize("vary, sentence", [
    ("step_every=1:" + "4" * 400, f"step_every must lie between -{MAX_WHOLE} and {MAX_WHOLE} in a sweep"),
    (f"step_every=1:{10**20}", f"step_every must lie between -{MAX_WHOLE} and {MAX_WHOLE} in a sweep"),
    ("step_every=1:" + "9" * 5000, "step_every takes a whole number, got '9999"),
    ("plateau_patience=2," + str(10**30), "plateau_patience must lie between"),
    ("lr=0.001:" + "4" * 400, "lr's range needs two finite numbers, got 0.001 and inf"),
    ("crop_padding=0:40", "crop_padding must be between 0 and 16 pixels"),
])
def test_a_huge_vary_number_is_one_sentence_from_the_command_line_and_makes_nothing(tmp_path, vary, sentence):
    done = subprocess.run([sys.executable, "-m", "core.sweep", *CREATE, "--runs-dir", str(tmp_path), f"--vary={vary}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    err = done.stderr.strip()
    assert done.returncode == 1 and sentence in one_sentence(err) and len(err) < 400, err
    assert not (tmp_path / catalog.SWEEPS_DIR_NAME).exists()


def test_whole_number_ranges_are_kept_and_suggested_exactly(tmp_path):
    with pytest.raises(SweepError, match="step_every must lie between"):
        create_sweep(tmp_path, "big", tiny_config(), [parse_param(f"step_every=1:{10**20}")], trials=2)
    top = parse_param(f"step_every={MAX_WHOLE - 1}:{MAX_WHOLE}")
    assert (top.low, top.high) == (MAX_WHOLE - 1, MAX_WHOLE) and all(type(v) is int for v in (top.low, top.high))
    sweep = create_sweep(tmp_path, "top", tiny_config(), [top], trials=4, sampler="random")
    assert load_sweep(tmp_path, sweep.sweep_id).space == (top,)
    study = sweep.open_study()
    for _ in range(4):
        value = top.suggest(study.ask())
        assert type(value) is int and value in (MAX_WHOLE - 1, MAX_WHOLE)
    stored = [t.params["step_every"] for t in sweep.open_study().get_trials()]  # read back from the journal
    assert all(type(v) is int and v in (MAX_WHOLE - 1, MAX_WHOLE) for v in stored), stored


# --- finding 7: storage URLs every worker can share --------------------------------------------

def test_an_in_memory_database_is_refused_at_create(tmp_path, capsys):
    for url in ("sqlite:///:memory:", "sqlite://", "sqlite:///file:x?mode=memory&uri=true"):
        code, err = cli(capsys, *CREATE, "--runs-dir", str(tmp_path), "--vary", "lr=0.001:0.1", "--storage", url)
        assert code == 1 and "keeps the study in memory, where no worker can reach it" in one_sentence(err), err
    assert not (tmp_path / catalog.SWEEPS_DIR_NAME).exists()


def test_a_relative_sqlite_path_is_kept_absolute_so_other_folders_reach_it(tmp_path, capsys, monkeypatch):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir(), elsewhere.mkdir()
    monkeypatch.chdir(here)
    sweep = create_sweep(tmp_path / "runs", "rel", tiny_config(), LR, trials=2, storage="sqlite:///study.db")
    assert sweep.storage == f"sqlite:///{here / 'study.db'}"
    sweep.open_study().enqueue_trial({"lr": 1e-3})
    monkeypatch.chdir(elsewhere)
    assert sweep_cli(["status", "--sweep", sweep.sweep_id, "--runs-dir", str(tmp_path / "runs")]) == 0
    assert "1 of 2 trials" in capsys.readouterr().out  # the trial enqueued from the first folder
    assert not (elsewhere / "study.db").exists()
    assert len(load_sweep(tmp_path / "runs", sweep.sweep_id).open_study().get_trials()) == 1  # the same study


def test_a_storage_that_cannot_be_opened_is_refused_at_create(tmp_path):
    with pytest.raises(SweepError, match=r"Cannot use the storage .*: OperationalError: unable to open database file"):
        create_sweep(tmp_path, "db", tiny_config(), LR, trials=2, storage=f"sqlite:///{tmp_path}/no/such/folder.db")
    with pytest.raises(SweepError, match="it is not a database URL"):
        create_sweep(tmp_path, "db", tiny_config(), LR, trials=2, storage="/etc/passwd")
    assert not (tmp_path / catalog.SWEEPS_DIR_NAME).exists()


@pytest.fixture
def sqlite_sweep(tmp_path) -> Sweep:
    return create_sweep(tmp_path, "db", tiny_config(), LR, trials=2, storage=f"sqlite:///{tmp_path / 'study.db'}")


def test_a_deleted_database_is_one_sentence_for_status_work_and_the_list(tmp_path, capsys, sqlite_sweep):
    (tmp_path / "study.db").unlink()
    for command in ("status", "work"):
        code, err = cli(capsys, command, "--sweep", sqlite_sweep.sweep_id, "--runs-dir", str(tmp_path))
        assert code == 1 and f"database file {tmp_path / 'study.db'} is missing" in one_sentence(err)
    assert not (tmp_path / "study.db").exists()  # not made again, empty, by opening it
    [listed] = list_sweeps(tmp_path)
    assert isinstance(listed, DamagedSweep) and "is missing (moved or deleted)" in listed.problem


def test_a_database_replaced_by_another_is_one_sentence(tmp_path, capsys, sqlite_sweep):
    (tmp_path / "study.db").unlink()
    sqlite3.connect(tmp_path / "study.db").close()  # an empty database in its place
    code, err = cli(capsys, "status", "--sweep", sqlite_sweep.sweep_id, "--runs-dir", str(tmp_path))
    assert code == 1 and f"the database holds no study {sqlite_sweep.sweep_id}" in one_sentence(err)
    (tmp_path / "study.db").unlink()
    (tmp_path / "study.db").write_text("not a database\n")
    code, err = cli(capsys, "status", "--sweep", sqlite_sweep.sweep_id, "--runs-dir", str(tmp_path))
    assert code == 1 and "file is not a database" in one_sentence(err)


# --- finding 8: a damaged sweep.json is listed as damaged, with its sentence --------------------

def _set(path: str, value):
    """A change to sweep.json's dict: `value` at the dotted `path` (space.0.high), or the key removed."""
    def change(spec: dict) -> dict:
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        key = int(last) if isinstance(node, list) else last
        if value is DELETE:
            del node[key]
        else:
            node[key] = value
        return spec
    return change


DELETE = object()
DAMAGES = [
    ("name", _set("name", 7), "name should be text, got 7"),
    ("name too long", _set("name", "n" * 99), "a sweep name can be at most 97 characters long for 3 trials"),
    ("no name", _set("name", DELETE), "name is missing"),
    ("created_at 1e300", _set("created_at", 1e300), "created_at should be a time in unix seconds or null, got 1e+300"),
    ("created_at Infinity", _set("created_at", float("inf")), "created_at should be a time in unix seconds"),
    ("created_at text", _set("created_at", "yesterday"), "created_at should be a time"),
    ("storage int", _set("storage", 5), "storage should be text or null, got 5"),
    ("storage dict", _set("storage", {"url": "x"}), "storage should be text or null"),
    ("storage garbage", _set("storage", "::garbage::"), "it is not a database URL"),
    ("storage /etc/passwd", _set("storage", "/etc/passwd"), "it is not a database URL"),
    ("storage memory", _set("storage", "sqlite:///:memory:"), "keeps the study in memory"),
    ("storage relative", _set("storage", "sqlite:///study.db"), "its SQLite path is relative"),
    ("storage missing file", _set("storage", "sqlite:////nonexistent/study.db"),
     "its database file /nonexistent/study.db is missing"),
    ("storage other database", _set("storage", "oracle://u@h/db"), "it names a oracle database"),
    ("trials text", _set("trials", "3"), "trials should be a whole number from 1 to 10000, got '3'"),
    ("trials huge", _set("trials", 10**400), "trials should be a whole number from 1 to 10000"),
    ("sampler", _set("sampler", ["tpe"]), "sampler should be one of tpe, random"),
    ("pruner", _set("pruner", "sometimes"), "pruner should be one of median, hyperband, none"),
    ("metric", _set("metric", "test_acc"), "metric should be 'val_acc'"),
    ("space empty", _set("space", []), "space should be a list of at least one setting"),
    ("space text", _set("space", "lr"), "space should be a list of at least one setting"),
    ("space entry", _set("space.0", 3), "each setting of the space should be an object naming its field, got 3"),
    ("space field", _set("space.0.field", "device"), "cannot vary device"),
    ("space field unknown", _set("space.0.field", ["lr"]), "each setting of the space should be an object naming"),
    ("space high 400 digits", _set("space.0.high", int("4" * 400)), "lr's range needs two finite numbers"),
    ("space int high 400 digits", lambda s: {**s, "space": [{"field": "step_every", "low": 1, "high": int("4" * 400),
                                                             "log": False}]}, "step_every must lie between"),
    ("space int high 1e20", lambda s: {**s, "space": [{"field": "step_every", "low": 1, "high": 10**20,
                                                       "log": False}]}, "step_every must lie between"),
    ("space low text", _set("space.0.low", "small"), "lr's range needs two finite numbers, got 'small'"),
    ("space log", _set("space.0.log", "yes"), "lr's log should be true or false, got 'yes'"),
    ("space choices", lambda s: {**s, "space": [{"field": "optimizer", "choices": "sgd"}]},
     "optimizer's choices should be a list"),
    ("space choices nested", lambda s: {**s, "space": [{"field": "optimizer", "choices": [["sgd"]]}]},
     "optimizer's choices should be a list of numbers, text or true/false"),
    ("space 100,000 choices", lambda s: {**s, "space": [{"field": "seed", "choices": list(range(100_000))}]},
     "seed lists 100,000 choices; a sweep takes at most 1,000"),
    ("base text", _set("base", "tiny"), "base should be an object of settings"),
    ("base lr 400 digits", _set("base.lr", int("4" * 400)), "base lr should be a number of at most 9007199254740992"),
    ("base lr text", _set("base.lr", "fast"), "lr must be a float, got 'fast'"),
    ("base no validation", _set("base.val_fraction", 0.0), "needs a val_fraction above 0"),
    ("no base", _set("base", DELETE), "base is missing"),
    ("a list", lambda s: [s], "it should hold a JSON object"),
]


@pytest.fixture
def journal_sweep(tmp_path) -> Sweep:
    return create_sweep(tmp_path, "hurt", tiny_config(), LR, trials=3)


@pytest.mark.parametrize("change, problem", [d[1:] for d in DAMAGES], ids=[d[0] for d in DAMAGES])
def test_a_damaged_sweep_json_is_listed_as_damaged_with_one_sentence(tmp_path, capsys, journal_sweep, change, problem):
    spec = journal_sweep.path / "sweep.json"
    spec.write_text(json.dumps(change(json.loads(spec.read_text()))))
    with pytest.raises(SweepError) as refused:
        load_sweep(tmp_path, journal_sweep.sweep_id)
    sentence = str(refused.value)
    assert sentence.startswith(f"Sweep {journal_sweep.sweep_id} cannot be used: ") and problem in sentence
    assert sentence.count("\n") == 0 and len(sentence) < 600, sentence  # no 400-digit number in full
    assert list_sweeps(tmp_path) == [DamagedSweep(journal_sweep.sweep_id, journal_sweep.path, sentence)]
    code, err = cli(capsys, "status", "--sweep", journal_sweep.sweep_id, "--runs-dir", str(tmp_path))
    assert code == 1 and one_sentence(err) == f"error: {sentence}"
    assert sweep_cli(["list", "--runs-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"{journal_sweep.sweep_id}  damaged: {sentence}"


def test_a_sweep_json_that_is_not_a_regular_file_is_damaged(tmp_path, journal_sweep):
    spec = journal_sweep.path / "sweep.json"
    spec.unlink()
    spec.mkdir()
    [listed] = list_sweeps(tmp_path)
    assert listed.problem.endswith("sweep.json is damaged: it is not a regular file.")


def test_a_database_that_cannot_be_opened_is_one_sentence_for_status(tmp_path, capsys, journal_sweep):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    for url, problem in [(f"sqlite:///{notes}", "DatabaseError: file is not a database"),
                         ("postgresql+psycopg://nobody@127.0.0.1:1/none",
                          'connection to server at "127.0.0.1", port 1 failed')]:
        spec = journal_sweep.path / "sweep.json"
        spec.write_text(json.dumps({**json.loads(spec.read_text()), "storage": url}))
        code, err = cli(capsys, "status", "--sweep", journal_sweep.sweep_id, "--runs-dir", str(tmp_path))
        assert code == 1 and f"Cannot use the storage '{url}': " in one_sentence(err) and problem in err, err


def test_the_sweeps_page_lists_damaged_sweeps_and_shows_each_ones_sentence(tmp_path, monkeypatch):
    runs_dir = tmp_path / "runs"
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    hurt = []
    for key, value in [("storage", "::garbage::"), ("created_at", 1e300),
                       ("space", [{"field": "step_every", "low": 1, "high": int("4" * 400), "log": False}]),
                       ("storage", f"sqlite:///{notes}"), ("storage", "postgresql+psycopg://nobody@127.0.0.1:1/none")]:
        sweep = create_sweep(runs_dir, f"hurt {key}", tiny_config(), LR, trials=3)
        spec = sweep.path / "sweep.json"
        spec.write_text(json.dumps({**json.loads(spec.read_text()), key: value}))
        hurt.append(sweep.sweep_id)
    create_sweep(runs_dir, "good", tiny_config(), LR, trials=3)  # the newest
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(runs_dir))
    at = open_view("views/sweeps.py")
    assert at.subheader[0].value == "good" and not at.error and not at.info
    picker = at.selectbox(key="sweeps_sweep")
    assert len(picker.options) == 6 and picker.options[0].startswith("good · ")
    assert sum(label.endswith(" · cannot be used") for label in picker.options) == 3  # the damaged sweep.json files
    for sweep_id in hurt:
        at.selectbox(key="sweeps_sweep").set_value(sweep_id)  # the element of the latest run
        rerun(at)
        [error] = at.error
        sentence = shown(error.value)
        assert sentence.startswith((f"Sweep {sweep_id} cannot be used: ", "Cannot use the storage ")), sentence


# --- finding 11: the space is checked once per version of sweep.json ---------------------------

def test_reading_an_unchanged_sweep_again_does_not_check_its_space_again(tmp_path, monkeypatch):
    sweep = create_sweep(tmp_path, "cached", tiny_config(), LR, trials=3)
    checks = []
    real = sweep_study.check_space
    monkeypatch.setattr(sweep_study, "check_space", lambda *args: checks.append(1) or real(*args))
    spec = sweep.path / "sweep.json"
    records.write_json(spec, {**json.loads(spec.read_text()), "trials": 4})  # a version not read yet
    for _ in range(3):
        assert load_sweep(tmp_path, sweep.sweep_id).trials == 4 and list_sweeps(tmp_path)[0].trials == 4
    assert len(checks) == 1
    records.write_json(spec, {**json.loads(spec.read_text()), "trials": 5})  # changed: read and checked again
    assert load_sweep(tmp_path, sweep.sweep_id).trials == 5 and len(checks) == 2


def test_more_choices_than_a_sweep_reads_quickly_are_refused_at_create(tmp_path):
    """Each choice is checked whenever sweep.json is read: 100,000 of them cost every page seconds."""
    with pytest.raises(SweepError, match="seed lists 1,001 choices; a sweep takes at most 1,000: give a range"):
        create_sweep(tmp_path, "many", tiny_config(), [Param("seed", choices=tuple(range(1001)))], trials=3)
    assert not (tmp_path / "sweeps").exists() or not any((tmp_path / "sweeps").iterdir())
