"""The engine end to end on synthetic data: a complete run folder, resume, repeatability, stop, OOM."""
import json
import shutil
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from core.rundir import catalog, checkpoints, layout, lifecycle, predictions
from core.rundir.records import read_json
from core.rundir.state import RunState
from core.training import engine
from core.training.engine import OOM_MESSAGE, resume_run, start_run
from tests import REPO
from tests.helpers import register_normed_net, tiny_config, train_tiny_run


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("runs"), name="tiny", epochs=2)


def test_a_finished_run_holds_everything_the_dashboard_reads(finished):
    path = finished.run_dir
    status = read_json(path / "status.json")
    assert status["state"] == "completed" and status["progress"] == 1.0 and status["epoch"] == 2
    assert status["device"] == "cpu" and status["finished_at"] >= status["started_at"]
    records = catalog.read_metrics(path)
    kinds = [r["kind"] for r in records]
    assert kinds.count("val") == 2 and kinds.count("test") == 1 and kinds.count("train") >= 4
    assert all(np.isfinite(r["loss"]) and 0 <= r["acc"] <= 1 for r in records if r["kind"] == "train")
    val = [r for r in records if r["kind"] == "val"]
    assert [v["epoch"] for v in val] == [1, 2] and all(v["images_per_s"] > 0 for v in val)
    for which in ("last", "best"):
        ckpt = checkpoints.load_checkpoint(checkpoints.checkpoint_path(path, which))
        assert ckpt["model"] == "tutorial-cnn" and ckpt["config"]["epochs"] == 2 and len(ckpt["classes"]) == 10
    assert predictions.val_epochs(path) == [1, 2]
    summary = json.loads((path / "test_summary.json").read_text())
    test = predictions.load_predictions(path, "test")
    assert len(test.labels) == 500 and test.probs.shape == (500, 10)
    assert summary["accuracy"] == pytest.approx((test.pred == test.labels).mean())
    assert set(summary["per_class_accuracy"]) == set(ckpt["classes"])
    assert summary["accuracy"] > 0.5, "synthetic classes are easy: a tiny net must beat chance clearly"
    assert finished.test_acc == pytest.approx(summary["accuracy"])


def test_same_seed_same_run_on_cpu(tmp_path):
    a = train_tiny_run(tmp_path, epochs=1)
    b = train_tiny_run(tmp_path, epochs=1)
    losses = [[r.get("loss") for r in catalog.read_metrics(x.run_dir) if r["kind"] == "train"] for x in (a, b)]
    assert losses[0] == losses[1] and a.test_acc == b.test_acc


def test_stop_mid_epoch_then_resume_carries_on(tmp_path):
    stop = threading.Event()
    calls = {"n": 0}

    def stop_after_a_few_steps(status):  # called from the training loop's status updates
        calls["n"] += 1
        if status.get("step", 0) >= 3:
            stop.set()

    import core.training.engine as engine
    engine_interval = engine.STATUS_INTERVAL_S
    engine.STATUS_INTERVAL_S = 0.0  # report every step so the stop lands mid-epoch
    try:
        stopped = start_run(tiny_config(epochs=2), tmp_path, stop=stop, on_status=stop_after_a_few_steps)
    finally:
        engine.STATUS_INTERVAL_S = engine_interval
    assert stopped.state == "stopped"
    run_id = stopped.run_dir.name
    assert catalog.list_runs(tmp_path)[0].state == "stopped"
    saved = checkpoints.load_checkpoint(checkpoints.checkpoint_path(stopped.run_dir, "last"))["progress"]
    assert saved["epoch"] == 0 and 0 < saved["batch"] < 18  # mid-epoch
    resumed = resume_run(tmp_path, run_id)
    assert resumed.state == "completed" and resumed.epochs_done == 2
    records = catalog.read_metrics(stopped.run_dir)
    steps = [r["step"] for r in records if r["kind"] == "train"]
    assert steps == sorted(set(steps)), "resume must not duplicate steps"
    assert [r["epoch"] for r in records if r["kind"] == "val"] == [1, 2]
    assert sum(r["kind"] == "test" for r in records) == 1


def test_resumed_run_matches_an_uninterrupted_one(tmp_path):
    """Stopping at an epoch boundary and resuming gives the same weights as never stopping."""
    whole = train_tiny_run(tmp_path, epochs=2)
    stop = threading.Event()
    first = start_run(tiny_config(epochs=2), tmp_path,
                      on_status=lambda s: stop.set() if s.get("epoch") == 1 else None, stop=stop)
    assert first.state == "stopped"
    resumed = resume_run(tmp_path, first.run_dir.name)
    a = checkpoints.load_checkpoint(checkpoints.checkpoint_path(whole.run_dir, "last"))["model_state"]
    b = checkpoints.load_checkpoint(checkpoints.checkpoint_path(resumed.run_dir, "last"))["model_state"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


def test_completed_runs_cannot_be_resumed(finished):
    with pytest.raises(catalog.RunError, match="only stopped, failed or interrupted"):
        resume_run(finished.run_dir.parent, finished.run_dir.name)


def test_out_of_memory_ends_the_run_as_failed(tmp_path, monkeypatch):
    import core.training.engine as engine

    def explode(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(engine.torch.optim.Adam, "step", explode)
    result = start_run(tiny_config(), tmp_path)
    assert result.state == "failed" and result.error == OOM_MESSAGE
    assert catalog.list_runs(tmp_path)[0].error == OOM_MESSAGE


def test_bad_data_source_fails_with_its_sentence(tmp_path):
    result = start_run(tiny_config(data=str(tmp_path / "nowhere")), tmp_path / "runs")
    summary = catalog.list_runs(tmp_path / "runs")[0]
    assert result.state == summary.state == "failed"
    assert "nowhere" in summary.error and "\n" not in summary.error


def run_cli(*args, env_extra=None, cwd=REPO):
    import os
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "core.train", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


def test_command_line_trains_a_run(tmp_path):
    out = run_cli("--data", "synthetic", "--model", "tutorial-cnn", "--epochs", "1", "--batch-size", "100",
                  "--optimizer", "adam", "--lr", "0.01", "--no-nesterov", "--runs-dir", str(tmp_path),
                  "--name", "from the cli")
    assert out.returncode == 0, out.stderr
    assert "completed: test accuracy" in out.stdout
    [summary] = catalog.list_runs(tmp_path)
    assert (summary.name, summary.state, summary.model) == ("from the cli", "completed", "tutorial-cnn")
    assert "epoch 1/1: val loss" in out.stderr  # the progress output


@pytest.mark.parametrize("args, words", [
    (["--epochs", "0"], "epochs must be between 1"),
    (["--val-fraction", "0.9"], "val_fraction must be between 0 and 0.5"),
    (["--data", "/definitely/not/here"], "/definitely/not/here"),
    (["--resume", "../etc"], "not valid"),
])
def test_command_line_bad_input_is_one_sentence_and_creates_nothing(tmp_path, args, words):
    runs_dir = tmp_path / "runs"
    out = run_cli("--data", "synthetic", "--runs-dir", str(runs_dir), *args)
    assert out.returncode == 1
    assert words in out.stderr and "Traceback" not in out.stderr
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_command_line_refuses_an_unknown_model_in_one_sentence_before_making_a_run_folder(tmp_path, capsys):
    from core.train import main
    from core.training.models import list_models

    runs_dir = tmp_path / "runs"
    interrupt = signal.getsignal(signal.SIGINT)  # main() installs its own Ctrl-C handler
    try:
        assert main(["--data", "synthetic", "--model", "resnet1000", "--runs-dir", str(runs_dir)]) == 1
    finally:
        signal.signal(signal.SIGINT, interrupt)
    sentence = f"model must be one of {', '.join(list_models())}, got 'resnet1000'."
    assert capsys.readouterr().err.strip() == f"error: {sentence}"
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_starting_or_resuming_a_run_of_an_unknown_model_is_refused_before_anything_is_written(finished, tmp_path):
    with pytest.raises(ValueError, match="^model must be one of .*, got 'resnet1000'\\.$"):
        start_run(tiny_config(model="resnet1000"), tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    copy = tmp_path / "copy"
    shutil.copytree(finished.run_dir, copy / "old")
    config = json.loads(layout.config(copy / "old").read_text())
    layout.config(copy / "old").write_text(json.dumps({**config, "model": "resnet1000"}))
    lifecycle.update_status(copy / "old", state=RunState.STOPPED)
    before = {path: path.stat().st_mtime_ns for path in (copy / "old").rglob("*")}
    with pytest.raises(ValueError, match="got 'resnet1000'"):
        resume_run(copy, "old")
    assert {path: path.stat().st_mtime_ns for path in (copy / "old").rglob("*")} == before


def test_the_schedule_scales_each_groups_rate_by_its_lr_scale(tmp_path, monkeypatch):
    """A model's declared groups reach the optimiser and keep their own rate multiplier and weight decay."""
    register_normed_net(monkeypatch)
    result = train_tiny_run(tmp_path, model="normed-net", epochs=1, optimizer="sgd", weight_decay=1e-3)
    groups = checkpoints.load_checkpoint(checkpoints.checkpoint_path(result.run_dir, "last"))["optimizer_state"]["param_groups"]
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(0.01, 1e-3), (0.04, 0.0)]


def test_fastnet_trains_its_norm_shifts_faster_and_holds_the_whitening_bias_still_after_its_epochs(tmp_path):
    """The optimiser gets fastnet's groups; the whitening bias learns in epoch 1 only, and a run stopped after
    that epoch and resumed keeps it where it was (the freeze is worked out from the step, not remembered)."""
    settings = dict(model="fastnet-small", epochs=3, optimizer="sgd", momentum=0.9, nesterov=True, lr=0.01,
                    weight_decay=1e-3, norm_bias_lr_scale=4.0, whiten_bias_epochs=1.0, val_fraction=0.0)
    stop = threading.Event()
    first = start_run(tiny_config(**settings), tmp_path, stop=stop,
                      on_status=lambda s: stop.set() if s.get("epoch") == 1 else None)
    assert first.state == "stopped"
    after_one = checkpoints.load_checkpoint(checkpoints.checkpoint_path(first.run_dir, "last"))
    assert after_one["progress"]["epoch"] == 1
    resumed = resume_run(tmp_path, first.run_dir.name)
    assert resumed.state == "completed" and resumed.epochs_done == 3
    final = checkpoints.load_checkpoint(checkpoints.checkpoint_path(resumed.run_dir, "last"))
    one, end = after_one["train_model_state"], final["train_model_state"]
    assert not torch.equal(one["whiten.bias"], torch.zeros_like(one["whiten.bias"])), "it learns in epoch 1"
    assert torch.equal(end["whiten.bias"], one["whiten.bias"]), "then it stays where it was, across the resume"
    assert not torch.equal(end["head.weight"], after_one["train_model_state"]["head.weight"]), "the rest learns on"
    groups = final["optimizer_state"]["param_groups"]
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(0.01, 1e-3), (0.04, 2.5e-4), (0.0, 1e-3)]


def test_a_resumed_run_carries_on_its_lookahead(tmp_path):
    """The slow copy is in the optimiser's state, so stopping between two syncs (18 steps an epoch, a sync every
    5) and resuming ends on the same weights as never stopping."""
    whole = train_tiny_run(tmp_path, epochs=2, lookahead_every=5)
    stop = threading.Event()
    first = start_run(tiny_config(epochs=2, lookahead_every=5), tmp_path,
                      on_status=lambda s: stop.set() if s.get("epoch") == 1 else None, stop=stop)
    assert first.state == "stopped"
    resumed = resume_run(tmp_path, first.run_dir.name)
    a, b = (checkpoints.load_checkpoint(checkpoints.checkpoint_path(r.run_dir, "last")) for r in (whole, resumed))
    assert all(torch.allclose(a["model_state"][k].float(), b["model_state"][k].float(), atol=1e-5)
               for k in a["model_state"])
    assert all("lookahead_slow" in state for state in a["optimizer_state"]["state"].values())


def test_a_run_its_epoch_callback_prunes_ends_pruned_without_a_test_and_keeps_its_checkpoint(tmp_path):
    seen = []

    def prune_after_the_second(epoch, val):
        seen.append((epoch, round(val["val_acc"], 6)))
        return epoch == 2

    result = start_run(tiny_config(epochs=4), tmp_path, device=torch.device("cpu"), on_epoch=prune_after_the_second)
    assert result.state == "pruned" and result.epochs_done == 2 and result.test_acc is None
    assert [e for e, _ in seen] == [1, 2]
    summary = catalog.summarize_run(result.run_dir)
    assert summary.state == "pruned" and summary.epoch == 2
    assert catalog.has_checkpoint(result.run_dir) and not (result.run_dir / "test_summary.json").exists()
    assert lifecycle.resume_refusal(summary) is not None, "a pruned trial is over: resuming it is refused"


def test_a_slow_first_epoch_saves_a_first_look_halfway_that_changes_nothing_it_trains(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "FIRST_LOOK_AFTER_S", float("inf"))  # a quick first half: no first look
    plain = start_run(tiny_config(epochs=2), tmp_path / "plain", device=torch.device("cpu"))
    assert not layout.val_first_look(plain.run_dir).exists()
    monkeypatch.setattr(engine, "FIRST_LOOK_AFTER_S", 0.0)  # every first half counts as slow
    looked = start_run(tiny_config(epochs=2), tmp_path / "looked", device=torch.device("cpu"))
    first_look = predictions.load_first_look(looked.run_dir)
    epoch_one = predictions.load_predictions(looked.run_dir, "val", 1)
    assert np.array_equal(first_look.labels, epoch_one.labels) and np.array_equal(first_look.index, epoch_one.index)
    assert not np.array_equal(first_look.probs, epoch_one.probs)  # half an epoch less trained
    same = [predictions.load_predictions(r.run_dir, "test").probs for r in (plain, looked)]
    assert np.array_equal(*same) and plain.best_val_acc == looked.best_val_acc
