"""Reliability II, engine and run-file side: wrongly typed fields, kills before the first checkpoint,
divergence, a full disk, two sessions pressing Resume at once, settings that cannot train."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from core.jobs import JobManager
from core.rundir import catalog, checkpoints, lifecycle
from core.rundir.config import MAX_SEED, TrainConfig
from core.training.engine import DIVERGED_MESSAGE, restart_run, resume_run, start_run
from tests import REPO
from tests.helpers import app_runs_folder, open_view, tiny_config, tmpfs, train_tiny_run, wait_for

PAGES = ["views/train.py", "views/runs.py", "views/data.py", "views/errors.py", "views/dynamics.py",
         "views/gallery.py", "views/calibration.py"]


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.train", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


# ---------------------------------------------------------------------------------------------
# 1, 2: one wrongly typed field, one wrongly typed metrics record
# ---------------------------------------------------------------------------------------------

STATUS_DAMAGE = {
    "created_at as a date": {"created_at": "2026-11-24"},
    "created_at in 5 billion years": {"created_at": 1e20},
    "epochs as a word": {"epochs": "ten"},
    "progress as a word": {"progress": "half"},
    "test_acc as text": {"test_acc": "99%"},
}
CONFIG_DAMAGE = {
    "data as a number": {"data": 5},
    "model as a list": {"model": ["a"]},
    "val_fraction as text": {"val_fraction": "x"},
    "val_fraction out of range": {"val_fraction": 0.9},
    "split_seed null": {"split_seed": None},
}
BAD_RECORDS = [{"kind": "train", "step": 3, "loss": "abc"}, {"kind": "train", "step": 3, "loss": [1]},
               {"kind": "val", "step": 3, "epoch": "one"}, {"kind": "train", "step": 10**400, "loss": 1.0}]


@pytest.fixture(scope="module")
def typed_damage(tmp_path_factory):
    with app_runs_folder(tmp_path_factory) as folder:
        good = train_tiny_run(folder, name="good", epochs=1).run_dir
        ids = {}
        for label, changes in {**STATUS_DAMAGE, **CONFIG_DAMAGE}.items():
            copy = folder / f"{good.name}-{len(ids)}"
            shutil.copytree(good, copy)
            edit_json(copy / ("status.json" if label in STATUS_DAMAGE else "config.json"), **changes)
            ids[label] = copy.name
        bad_lines = folder / f"{good.name}-records"
        shutil.copytree(good, bad_lines)
        with open(bad_lines / "metrics.jsonl", "a") as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in BAD_RECORDS))
        ids["bad records"] = bad_lines.name
        yield folder, good.name, ids


def test_a_wrongly_typed_field_makes_that_run_damaged_with_a_sentence_naming_it(typed_damage):
    folder, _, ids = typed_damage
    listed = {s.run_id: s for s in catalog.list_runs(folder)}  # sorting on a bad created_at used to raise here
    for label, changes in {**STATUS_DAMAGE, **CONFIG_DAMAGE}.items():
        summary = listed[ids[label]]
        (field,) = changes
        assert summary.state == "damaged", label
        assert field in summary.error and summary.error.endswith(".") and "\n" not in summary.error, summary.error


def test_a_wrongly_typed_metrics_record_costs_that_record_only(typed_damage):
    folder, good, ids = typed_damage
    assert catalog.read_metrics(folder / ids["bad records"]) == catalog.read_metrics(folder / good)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_loads_with_every_wrongly_typed_run_in_the_folder(typed_damage, page):
    folder, _, ids = typed_damage
    open_view(page, ids["bad records"])  # the damaged runs are not offered by the picker


# ---------------------------------------------------------------------------------------------
# 3: kills before the first checkpoint, checkpoints inside an epoch
# ---------------------------------------------------------------------------------------------

def test_last_checkpoint_is_written_before_best_so_a_kill_between_them_leaves_a_resumable_run(tmp_path, monkeypatch):
    def killed(*args):
        raise SystemExit("killed between last.pt and best.pt")  # not an Exception: train() does not catch it

    monkeypatch.setattr(checkpoints, "copy_checkpoint", killed)
    with pytest.raises(SystemExit):
        start_run(tiny_config(epochs=2), tmp_path)
    monkeypatch.undo()
    [summary] = catalog.list_runs(tmp_path)
    lifecycle.update_status(summary.path, pid=dead_pid())
    summary = catalog.summarize_run(summary.path)
    assert summary.state == "interrupted" and lifecycle.resume_refusal(summary) is None
    assert resume_run(tmp_path, summary.run_id).state == "completed"


def frozen_after_a_mid_epoch_checkpoint(process: subprocess.Popen, folder: Path) -> None:
    """Stop `process` (SIGSTOP) at a moment its last.pt was saved inside an epoch.

    Frozen, it cannot write an epoch-end checkpoint between this check and the kill, however fast the machine."""
    def saved_mid_epoch() -> bool:
        last = next(iter(folder.glob("*/checkpoints/last.pt")), None)
        # The file is renamed in whole, so it can be read while the run writes the next one.
        return last is not None and checkpoints.load_checkpoint(last)["progress"]["batch"] > 0

    while True:
        assert process.poll() is None, "the run ended before a mid-epoch checkpoint was seen"
        wait_for(saved_mid_epoch, every=0.02)
        os.kill(process.pid, signal.SIGSTOP)
        if saved_mid_epoch():
            return
        os.kill(process.pid, signal.SIGCONT)


def test_a_kill_mid_epoch_loses_at_most_the_checkpoint_interval(tmp_path):
    """kill -9 inside an epoch, after a timed checkpoint: resume carries on from inside that epoch."""
    args = ["--data", "synthetic", "--model", "tutorial-cnn", "--epochs", "2", "--batch-size", "8", "--optimizer",
            "adam", "--lr", "0.002", "--no-nesterov", "--log-every", "5", "--precision", "fp32", "--device", "cpu",
            "--checkpoint-every", "0.05", "--runs-dir", str(tmp_path), "--quiet"]
    process = subprocess.Popen([sys.executable, "-m", "core.train", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        frozen_after_a_mid_epoch_checkpoint(process, tmp_path)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(60)
    [summary] = catalog.list_runs(tmp_path)
    saved = checkpoints.load_checkpoint(checkpoints.checkpoint_path(summary.path, "last"))["progress"]
    assert summary.state == "interrupted" and saved["batch"] > 0, "saved inside an epoch"
    assert resume_run(tmp_path, summary.run_id).state == "completed"
    records = catalog.read_metrics(summary.path)
    assert [r["epoch"] for r in records if r["kind"] == "val"] == [1, 2]


def interrupted_before_first_checkpoint(folder: Path) -> catalog.RunSummary:
    run_dir = lifecycle.create_run(folder, tiny_config(epochs=1).to_dict(), name="cut in epoch 1")
    lifecycle.update_status(run_dir, state="running", pid=dead_pid())
    (run_dir / "metrics.jsonl").write_text(json.dumps({"kind": "train", "step": 2, "epoch": 0.1, "loss": 2.3}) + "\n")
    return catalog.summarize_run(run_dir)


def test_a_run_killed_before_its_first_checkpoint_says_start_again_not_resume(tmp_path):
    summary = interrupted_before_first_checkpoint(tmp_path)
    assert summary.state == "interrupted" and summary.error == catalog.NO_CHECKPOINT_MESSAGE
    assert "start it again" in lifecycle.resume_refusal(summary)
    result = restart_run(tmp_path, summary.run_id)
    assert result.state == "completed" and result.run_dir == summary.path
    assert all(r["loss"] != 2.3 for r in catalog.read_metrics(summary.path) if r["kind"] == "train"), \
        "the records of the lost partial epoch were cleared"


def test_the_train_page_offers_start_again_for_such_a_run_and_it_trains(tmp_path_factory):
    with app_runs_folder(tmp_path_factory) as folder:
        summary = interrupted_before_first_checkpoint(folder)
        at = open_view(run_id=summary.run_id)
        assert catalog.NO_CHECKPOINT_MESSAGE in [e.value for e in at.error]
        assert not [b for b in at.button if b.key == "live_resume"]
        at.button(key="live_restart").click()
        at.run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        from dashboard import state

        state._job_manager(str(folder)).wait(timeout=120)
        assert catalog.summarize_run(summary.path).state == "completed"


# ---------------------------------------------------------------------------------------------
# 4: divergence
# ---------------------------------------------------------------------------------------------

def test_a_diverging_run_stops_as_failed_with_advice_and_writes_no_nan(tmp_path):
    cfg = tiny_config(model="elu-convnet", optimizer="sgd", lr=10.0, momentum=0.9, schedule="constant", epochs=3)
    result = start_run(cfg, tmp_path)
    assert (result.state, result.error) == ("failed", DIVERGED_MESSAGE)
    assert result.epochs_done == 0, "it stopped at once, not after training on NaN"
    [summary] = catalog.list_runs(tmp_path)
    assert summary.error == DIVERGED_MESSAGE

    def refuse(token):
        raise AssertionError(f"{token} written to JSON")

    for path in [summary.path / "status.json", summary.path / "config.json"]:
        json.loads(path.read_text(), parse_constant=refuse)
    for line in (summary.path / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=refuse)


# ---------------------------------------------------------------------------------------------
# 5: a full disk
# ---------------------------------------------------------------------------------------------

def no_temporary_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name]


def test_a_full_disk_fails_the_run_in_one_sentence_removes_temporaries_and_keeps_the_last_checkpoint(
        tmp_path, monkeypatch):
    saves, real_save = [], torch.save

    def fill_the_disk(payload, fh):  # checkpoints are saved through an open file
        saves.append(fh)
        if len(saves) > 1:  # the second checkpoint finds the disk full half-way
            fh.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", fh.name)
        real_save(payload, fh)

    monkeypatch.setattr(torch, "save", fill_the_disk)
    result = start_run(tiny_config(epochs=3), tmp_path)
    monkeypatch.undo()
    assert (result.state, result.error) == ("failed", "the disk is full: free some space, then resume the run")
    [summary] = catalog.list_runs(tmp_path)
    assert summary.state == "failed" and summary.error == result.error
    assert no_temporary_files(tmp_path) == []
    last = checkpoints.load_checkpoint(checkpoints.checkpoint_path(summary.path, "last"))
    assert last["progress"]["epoch"] == 1, "the good one is intact"


def test_command_line_on_a_really_full_disk_exits_1_with_one_sentence(tmp_path):
    with tmpfs(tmp_path / "small-disk", "3m") as disk:
        out = run_cli("--data", "synthetic", "--model", "resnet20", "--epochs", "2", "--batch-size", "100",
                      "--precision", "fp32", "--device", "cpu", "--runs-dir", str(disk), "--quiet")
        assert out.returncode == 1, out.stderr
        assert "disk is full" in out.stderr and "Traceback" not in out.stderr, out.stderr
        [summary] = catalog.list_runs(disk)
        assert summary.state == "failed" and "disk is full" in summary.error
        assert no_temporary_files(disk) == []


# ---------------------------------------------------------------------------------------------
# 10: two sessions pressing Resume at once; 11: a test record left by a kill
# ---------------------------------------------------------------------------------------------

def test_two_sessions_pressing_resume_together_get_one_job_and_one_refusal(tmp_path):
    stopped = train_tiny_run(tmp_path, epochs=1).run_dir
    for trial in range(8):
        lifecycle.update_status(stopped, state="stopped", test_acc=None)
        manager = JobManager(tmp_path)
        # the race is in the check, not the training
        manager.training._enqueue = lambda job: time.sleep(0.01)  # noqa: E731
        barrier, outcomes = threading.Barrier(2), []

        def press():
            barrier.wait()
            try:
                manager.resume(stopped.name)
                outcomes.append("accepted")
            except catalog.RunError as exc:
                outcomes.append(str(exc))

        threads = [threading.Thread(target=press) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outcomes.count("accepted") == 1, (trial, outcomes)
        [refusal] = [o for o in outcomes if o != "accepted"]
        assert refusal.endswith(".") and stopped.name in refusal
        assert no_temporary_files(stopped) == []


def test_a_kill_between_the_test_record_and_the_final_status_gives_one_test_record_after_resume(tmp_path):
    run_dir = train_tiny_run(tmp_path, epochs=1).run_dir
    lifecycle.update_status(run_dir, state="running", pid=dead_pid())  # as if killed before "completed"
    assert resume_run(tmp_path, run_dir.name).state == "completed"
    assert [r["kind"] for r in catalog.read_metrics(run_dir)].count("test") == 1


@pytest.mark.parametrize("args, words", [
    (["--seed", str(2**64)], f"seed must be between 0 and {MAX_SEED}"),
    (["--split-seed", str(2**32)], f"split_seed must be between 0 and {MAX_SEED}"),
])
def test_seeds_beyond_the_generators_are_refused_before_anything_is_created(tmp_path, args, words):
    out = run_cli("--data", "synthetic", "--runs-dir", str(tmp_path / "runs"), *args)
    assert out.returncode == 1 and words in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_largest_seeds_train(tmp_path):
    result = start_run(tiny_config(epochs=1, seed=MAX_SEED, split_seed=MAX_SEED), tmp_path)
    assert result.state == "completed", result.error


# Finding 11: device strings are parsed (ASCII digits only) and checked against this machine before
# any run folder exists. The CI machine has no GPU, so any cuda device is missing here.
@pytest.mark.parametrize("device, words", [
    ("cuda:99999999999999999999", "device must be auto, cpu, mps, cuda or cuda:N"),
    ("cuda:\u0663", "device must be auto, cpu, mps, cuda or cuda:N"),  # an Arabic-Indic three
    ("cpu:0", "device must be auto, cpu, mps, cuda or cuda:N"),
    pytest.param("cuda", "no CUDA GPU is available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
])
def test_a_device_this_machine_cannot_use_is_refused_before_anything_is_created(tmp_path, device, words):
    out = run_cli("--data", "synthetic", "--runs-dir", str(tmp_path / "runs"), "--device", device)
    assert out.returncode == 1 and words in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())

    manager = JobManager(tmp_path / "dashboard-runs")
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        manager.submit(TrainConfig(device=device))
    assert not (tmp_path / "dashboard-runs").exists() or not any((tmp_path / "dashboard-runs").iterdir())

