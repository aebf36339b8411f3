"""Sweeps on Optuna (core/sweep): the search space's checks, the command line, and workers as a user runs
them: two processes on one sweep, pruning, a worker killed with kill -9, a stop request, a database URL."""
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from core.rundir import catalog, lifecycle
from core.sweep import Param, SweepError, create_sweep, list_sweeps, load_sweep, parse_param, read_results, work
from core.sweep.__main__ import main as sweep_cli
from core.sweep.study import JOURNAL_FILE
from tests import REPO
from tests.helpers import tiny_config

LR = [Param("lr", 1e-5, 1e-2, log=True)]


# --- the search space, refused in one sentence before anything exists --------------------------

@pytest.mark.parametrize("vary, sentence", [
    ([], "needs at least one setting to vary"),
    (["lrr=0.1:1"], "'lrr': it is not a training setting"),
    (["device=cpu,cuda"], "Cannot vary device: a sweep keeps the data, device"),
    (["lr=0.5:0.1"], "lr's range must go from a lower to a higher value, got 0.5 to 0.1"),
    (["lr=0:1"], "The sweep would train with lr=0.0, which is not allowed: lr must be greater than 0"),
    (["weight_decay=0:0.01:log"], "weight_decay's log-scale range must start above 0"),
    (["warmup_epochs=0:5"], "warmup_epochs=5.0, which is not allowed: warmup_epochs must be between 0 and epochs"),
    (["optimizer=sgd,rmsprop"], "optimizer must be one of sgd, adam, adamw, got 'rmsprop'"),
    (["model=resnet20,resnet1000"], "model=resnet1000, which is not allowed: model must be one of fastnet, "),
    (["optimizer=sgd:adam"], "optimizer is not a number, so it takes a list of choices"),
    (["batch_size=64:ab"], "batch_size takes a whole number, got 'ab'"),
    (["lr=0.01:0.1", "lr=0.001:0.01"], "lr is varied twice"),
])
def test_a_bad_search_space_is_refused_in_one_sentence_and_nothing_is_created(tmp_path, capsys, vary, sentence):
    argv = ["create", "--runs-dir", str(tmp_path), "--name", "s", "--data", "synthetic", "--epochs", "2"]
    argv += [f"--vary={v}" for v in vary]
    code = sweep_cli(argv)
    err = capsys.readouterr().err.strip()
    assert code == 1 and sentence in err and err.count("\n") == 0, err
    assert not (tmp_path / catalog.SWEEPS_DIR_NAME).exists()


def test_settings_whose_corners_clash_are_refused_before_any_trial_trains(tmp_path):
    base = tiny_config(epochs=4, warmup_epochs=0.0, schedule="onecycle")
    space = [Param("epochs", 2, 6), Param("warmup_epochs", 0.0, 3.0)]  # 2 epochs with 3 of warm-up
    with pytest.raises(SweepError, match="epochs=2, warmup_epochs=3.0, which is not allowed"):
        create_sweep(tmp_path, "clash", base, space, trials=4)
    with pytest.raises(SweepError, match="needs a val_fraction above 0"):
        create_sweep(tmp_path, "no val", tiny_config(val_fraction=0.0), LR, trials=4)
    with pytest.raises(SweepError, match="number of trials must be between 1 and 10000"):
        create_sweep(tmp_path, "none", tiny_config(), LR, trials=0)
    assert list_sweeps(tmp_path) == []


def test_parse_param_reads_ranges_log_ranges_and_choices():
    assert parse_param("lr=0.001:0.5:log") == Param("lr", 0.001, 0.5, log=True)
    assert parse_param("batch-size=64:512") == Param("batch_size", 64, 512)
    assert parse_param("nesterov=true,false") == Param("nesterov", choices=(True, False))
    assert parse_param("model=tutorial-cnn,resnet18").choices == ("tutorial-cnn", "resnet18")


# --- workers ---------------------------------------------------------------------------------

def _worker(runs_dir: Path, sweep_id: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core.sweep", "work", "--sweep", sweep_id, "--device", "cpu",
                             "--runs-dir", str(runs_dir)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _trial_runs_of(runs_dir: Path, pid: int) -> list[catalog.RunSummary]:
    return [s for s in catalog.list_runs(runs_dir) if s.sweep and s.status.get("pid") == pid]


def _freeze_mid_trial(runs_dir: Path, worker: subprocess.Popen, journal: Path, timeout: float = 60.0) -> None:
    """SIGSTOP `worker` while it trains a trial that has a checkpoint and holds no lock of the study."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(s.state == "running" and catalog.has_checkpoint(s.path) for s in _trial_runs_of(runs_dir, worker.pid)):
            worker.send_signal(signal.SIGSTOP)
            frozen = _trial_runs_of(runs_dir, worker.pid)
            locked = Path(f"{journal}.lock").exists() or (journal.parent / "trials.lock.lock").exists()
            if not locked and any(s.state == "running" and catalog.has_checkpoint(s.path) for s in frozen):
                return
            worker.send_signal(signal.SIGCONT)
        time.sleep(0.02)
    raise AssertionError("the worker never trained a trial with a checkpoint")


def test_two_workers_finish_a_12_trial_sweep_with_pruning_though_one_is_killed_mid_trial(tmp_path):
    """The issue's goal: a 12-trial sweep with 2 worker processes finishes, every trial is a run the
    dashboard lists, pruning saves at least 30% of the epochs, and a kill -9 does not stop the sweep."""
    epochs = 4
    sweep = create_sweep(tmp_path, "lr sweep", tiny_config(epochs=epochs), LR, trials=12, pruner="median")
    # Known points instead of random ones, so what the pruner faces is the same every time: two good rates
    # first (the median pruner waits for 2 finished trials), then good and hopeless ones.
    study = sweep.open_study()
    for lr in [3e-3, 5e-3] + [1e-5, 4e-3, 1.2e-5, 6e-3, 1.5e-5, 2e-3, 1.1e-5, 8e-3, 1.3e-5, 1.4e-5]:
        study.enqueue_trial({"lr": lr})
    first, second = _worker(tmp_path, sweep.sweep_id), _worker(tmp_path, sweep.sweep_id)
    try:
        _freeze_mid_trial(tmp_path, first, sweep.path / JOURNAL_FILE)
        first.kill()
        first.wait(10)
        assert second.wait(180) == 0, second.stderr.read()
    finally:
        for w in (first, second):
            if w.poll() is None:
                w.kill()

    results = read_results(load_sweep(tmp_path, sweep.sweep_id), tmp_path)
    assert len(results.trials) == 12 and results.finished
    killed = [t for t in results.trials if t.state == "failed"]
    assert len(killed) == 1, [(t.number, t.state, t.run_state) for t in results.trials]
    assert killed[0].run_state == "interrupted"
    killed_run = catalog.summarize_run(catalog.run_path(tmp_path, killed[0].run_id))
    assert lifecycle.resume_refusal(killed_run) is None, "the killed trial's run keeps a resumable checkpoint"
    assert results.count("completed") + results.count("pruned") == 11 and results.count("pruned") >= 4
    assert results.epochs_saved >= 0.30, results.epochs_saved
    listed = {s.run_id: s for s in catalog.list_runs(tmp_path)}
    for t in results.trials:  # every trial is a normal run the Runs page lists, named by sweep and number
        run = listed[t.run_id]
        assert (run.sweep, run.trial, run.name) == (sweep.sweep_id, t.number, f"lr sweep #{t.number}")
        assert run.state == {"completed": "completed", "pruned": "pruned", "failed": "interrupted"}[t.state]
    assert results.best is not None and results.best.value > 0.5
    assert set(results.importances) <= {"lr"}


def test_a_stop_request_ends_the_running_trial_resumably_and_the_worker_returns(tmp_path):
    sweep = create_sweep(tmp_path, "stop me", tiny_config(epochs=50, checkpoint_every=0.2), LR, trials=5)
    finished = []
    worker = threading.Thread(target=lambda: finished.append(work(tmp_path, sweep.sweep_id, "cpu")))
    worker.start()
    deadline = time.monotonic() + 60
    while not any(s.state == "running" and catalog.has_checkpoint(s.path) for s in catalog.list_runs(tmp_path)):
        assert time.monotonic() < deadline, "no trial started"
        time.sleep(0.05)
    assert sweep_cli(["stop", "--sweep", sweep.sweep_id, "--runs-dir", str(tmp_path)]) == 0
    worker.join(60)
    assert finished == [1]
    [trial] = read_results(sweep, tmp_path).trials
    assert trial.state == "failed" and trial.run_state == "stopped"
    assert lifecycle.resume_refusal(catalog.summarize_run(catalog.run_path(tmp_path, trial.run_id))) is None


def test_any_optuna_storage_url_holds_the_study_instead_of_the_journal_file(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    sweep = create_sweep(tmp_path, "db", tiny_config(epochs=1), LR, trials=1, storage=url)
    assert load_sweep(tmp_path, sweep.sweep_id).storage == url and not (sweep.path / JOURNAL_FILE).exists()
    assert work(tmp_path, sweep.sweep_id, "cpu") == 1
    assert sweep_cli(["status", "--sweep", sweep.sweep_id, "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 trials, 1 completed" in out and "best: trial #" in out
    with pytest.raises(SweepError, match="Cannot use the storage 'nosuchdb://x'"):
        create_sweep(tmp_path, "bad", tiny_config(), LR, trials=2, storage="nosuchdb://x")


def test_the_runs_list_leaves_the_sweeps_folder_out_and_bad_sweep_ids_are_refused(tmp_path):
    create_sweep(tmp_path, "only", tiny_config(), LR, trials=1)
    assert catalog.list_runs(tmp_path) == [] and len(list_sweeps(tmp_path)) == 1
    with pytest.raises(SweepError, match="Sweep id '../x' is not valid"):
        load_sweep(tmp_path, "../x")
    with pytest.raises(SweepError, match="There is no sweep nothere"):
        load_sweep(tmp_path, "nothere")


def test_a_trial_whose_worker_died_before_its_run_existed_is_marked_failed(tmp_path):
    sweep = create_sweep(tmp_path, "ghost", tiny_config(), LR, trials=3)
    study = sweep.open_study()
    trial = study.ask()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": int(dead.stdout)})
    [ghost] = read_results(sweep, tmp_path).trials
    assert ghost.state == "failed"
    assert study.get_trials()[0].state == TrialState.FAIL



@pytest.mark.parametrize("damage, problem", [
    (lambda text: text[: len(text) // 2], "sweep.json is damaged: it is not readable JSON"),
    (lambda text: text.replace('"trials": 3', '"trials": "3"'),
     "sweep.json is damaged: trials should be a whole number from 1 to 10000, got '3'"),
    (lambda text: text.replace('"field": "lr"', '"field": "device"'), "sweep.json is damaged: cannot vary device"),
    (lambda text: text.replace('"name": "hurt"', '"name": 7'), "sweep.json is damaged: name should be text, got 7"),
])
def test_a_damaged_sweep_file_is_listed_as_damaged_and_refused_in_one_sentence(tmp_path, damage, problem):
    sweep = create_sweep(tmp_path, "hurt", tiny_config(), LR, trials=3)
    spec = sweep.path / "sweep.json"
    spec.write_text(damage(spec.read_text()))
    with pytest.raises(SweepError) as refused:
        load_sweep(tmp_path, sweep.sweep_id)
    assert str(refused.value).startswith(f"Sweep {sweep.sweep_id} cannot be used") and problem in str(refused.value)
    [listed] = list_sweeps(tmp_path)
    assert (listed.sweep_id, listed.problem) == (sweep.sweep_id, str(refused.value))


def test_command_line_sweeps_skip_the_map_unless_asked_and_hyperband_spans_the_longest_trial(tmp_path, capsys):
    argv = ["create", "--runs-dir", str(tmp_path), "--name", "cli", "--preset", "notebook-classic",
            "--vary", "epochs=2:9", "--pruner", "hyperband"]
    assert sweep_cli(argv) == 0 and sweep_cli([*argv, "--feature-map"]) == 0
    created = {s.base.feature_map: s for s in list_sweeps(tmp_path)}
    assert set(created) == {False, True}
    assert created[False].most_epochs == 9 and created[False].open_study().pruner._max_resource == 9
