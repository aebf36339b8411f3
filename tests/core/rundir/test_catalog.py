"""Run folders: safe paths, atomic files, tolerant readers, honest states."""
import ast
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from core.rundir import catalog, checkpoints, lifecycle, predictions, records
from core.rundir.config import TrainConfig
from core.rundir.state import RunState
from tests import REPO

ROOT = REPO


def make_run(tmp_path, **status):
    path = lifecycle.create_run(tmp_path, TrainConfig().to_dict(), name="my run")
    if status:
        lifecycle.update_status(path, **status)
    return path


@pytest.mark.parametrize("bad", ["..", "../x", "/etc", "a/b", "a\\b", "a\x00b", "", ".hidden", "x" * 200,
                                 "café", "-dash"])
def test_run_path_refuses_ids_that_escape_or_are_odd(tmp_path, bad):
    with pytest.raises(catalog.RunError):
        catalog.run_path(tmp_path, bad)


def test_names_are_free_text_but_bounded(tmp_path):
    path = make_run(tmp_path)
    lifecycle.rename_run(tmp_path, path.name, "  chat/chien ../../ 猫  ")
    assert catalog.list_runs(tmp_path)[0].name == "chat/chien ../../ 猫"
    assert path.parent == tmp_path  # the name never became a path
    for bad in ["", "   ", "a\x00b", "x" * 101]:
        with pytest.raises(catalog.RunError):
            lifecycle.rename_run(tmp_path, path.name, bad)


def test_created_run_has_config_meta_and_status(tmp_path):
    path = make_run(tmp_path)
    assert TrainConfig.from_dict(json.loads((path / "config.json").read_text())) == TrainConfig()
    summary = catalog.list_runs(tmp_path)[0]
    assert (summary.name, summary.state, summary.model) == ("my run", "queued", TrainConfig().model)


def test_states_are_run_states_and_status_json_keeps_the_same_strings(tmp_path):
    path = make_run(tmp_path)
    assert '"state": "queued"' in (path / "status.json").read_text()
    summary = catalog.summarize_run(path)
    assert summary.state is RunState.QUEUED and f"{summary.state}" == "queued"
    lifecycle.update_status(path, state=RunState.STOPPED)
    assert json.loads((path / "status.json").read_text())["state"] == "stopped"
    assert catalog.summarize_run(path).state is RunState.STOPPED
    (path / "status.json").write_text("{}")
    assert catalog.summarize_run(path).state is RunState.DAMAGED


def test_runs_live_in_the_repository_runs_folder_by_default(monkeypatch):
    monkeypatch.delenv("CIFAR_RUNS_DIR", raising=False)
    assert catalog.default_runs_dir() == ROOT / "runs"


def test_the_run_folder_imports_nothing_else_from_core():
    """core.rundir is what every wing reads runs through: it may not lean on any of them (not even lazily)."""
    for path in sorted((ROOT / "core" / "rundir").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            outside = [m for m in modules if m.split(".")[0] == "core" and not m.startswith("core.rundir")]
            assert not outside, f"{path.name}:{node.lineno} imports {outside}"


def test_metrics_reader_skips_torn_and_garbage_lines(tmp_path):
    path = make_run(tmp_path)
    writer = lifecycle.MetricsWriter(path)
    writer.write([{"kind": "train", "step": 1, "loss": 2.0}, {"kind": "val", "step": 1, "val_acc": 0.5}])
    writer.close()
    with open(path / "metrics.jsonl", "a") as fh:
        fh.write('not json at all\n[1, 2]\n{"kind": "train", "step": 2, "lo')
    assert [r["step"] for r in catalog.read_metrics(path)] == [1, 1]


def test_truncate_metrics_keeps_records_up_to_the_checkpoint(tmp_path):
    path = make_run(tmp_path)
    writer = lifecycle.MetricsWriter(path)
    writer.write([{"kind": "train", "step": s} for s in range(1, 6)])
    writer.close()
    lifecycle.truncate_metrics(path, 3)
    assert [r["step"] for r in catalog.read_metrics(path)] == [1, 2, 3]


def test_dead_process_or_stale_heartbeat_reads_as_interrupted(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = make_run(tmp_path, state="running", pid=dead.pid)
    assert catalog.list_runs(tmp_path)[0].state == "interrupted"
    status = records.read_json(path / "status.json")
    status.update(pid=os.getpid(), heartbeat=time.time() - catalog.HEARTBEAT_TIMEOUT_S - 5)
    records.write_json(path / "status.json", status)
    assert catalog.effective_state(status) == "interrupted"
    status["heartbeat"] = time.time()
    assert catalog.effective_state(status) == "running"


def test_damaged_folders_are_listed_not_fatal(tmp_path):
    make_run(tmp_path)
    (tmp_path / "stray-folder").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    no_status = make_run(tmp_path)
    (no_status / "status.json").unlink()
    garbage = make_run(tmp_path)
    (garbage / "status.json").write_text("{ not json")
    states = {s.run_id: (s.state, s.error) for s in catalog.list_runs(tmp_path)}
    assert len(states) == 4  # the plain file is not a run
    assert states["stray-folder"][0] == "damaged" and "Not a run folder" in states["stray-folder"][1]
    assert states[no_status.name] == ("damaged", "status.json is missing.")
    assert states[garbage.name] == ("damaged", "status.json is damaged: it is not readable JSON (it may have been cut short).")


def test_checkpoints_round_trip_and_refuse_damage(tmp_path):
    import torch
    path = make_run(tmp_path)
    checkpoints.save_checkpoint(path, "last", {"model_state": {"w": torch.ones(2)}, "epoch": 3})
    loaded = checkpoints.load_checkpoint(checkpoints.checkpoint_path(path, "last"))
    assert loaded["epoch"] == 3 and torch.equal(loaded["model_state"]["w"], torch.ones(2))
    ckpt = checkpoints.checkpoint_path(path, "last")
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(catalog.RunError, match="cannot be loaded safely"):
        checkpoints.load_checkpoint(ckpt)
    with pytest.raises(catalog.RunError, match="no checkpoint"):
        checkpoints.load_checkpoint(checkpoints.checkpoint_path(path, "best"))


def test_predictions_missing_then_present(tmp_path):
    path = make_run(tmp_path)
    assert predictions.load_predictions(path, "test") is None
    probs = np.eye(3, dtype=np.float32)[[0, 1, 1]]
    predictions.save_test_predictions(path, np.array([0, 1, 2]), probs, np.zeros(3), np.array([5, 6, 7]))
    preds = predictions.load_predictions(path, "test")
    assert preds.pred.tolist() == [0, 1, 1] and preds.index.tolist() == [5, 6, 7]
    predictions.save_val_labels(path, np.array([2, 0]), np.array([10, 11]))
    predictions.save_val_predictions(path, 1, np.eye(3)[[2, 1]])
    assert predictions.val_epochs(path) == [1]
    val = predictions.load_predictions(path, "val", epoch=1)
    assert val.pred.tolist() == [2, 1] and val.split == "val"
    assert predictions.load_predictions(path, "val", epoch=2) is None
