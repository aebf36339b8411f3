"""Runs written by version 0.2 still open, show and resume.

tests/fixtures/runs-0.2 was written by the code of 0.2 (the commit before the run folder got its layout
module and core its wings): "made by 0.2" by `python -m core.train --model tutorial-cnn --data synthetic
--epochs 2 --batch-size 64 --feature-map`, "stopped by 0.2" by the engine stopped after its first of two
epochs. Every file of today's run-folder format is in them: config, status, meta, metrics, test summary,
both checkpoints, validation labels and epochs, test predictions, features and the 2-D map.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.analysis import features
from core.data import load_dataset
from core.rundir import catalog, predictions
from core.training.engine import resume_run
from core.training.inference import Predictor
from tests.helpers import open_view

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "runs-0.2"
COMPLETED, STOPPED = "20261207-170221-made-by-0-2-eb22", "20261207-170919-stopped-by-0-2-376a"


@pytest.fixture
def old_runs(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "runs")
    return tmp_path / "runs"


def test_both_old_runs_are_listed_as_they_ended(old_runs: Path) -> None:
    by_name = {s.name: s for s in catalog.list_runs(old_runs)}
    assert sorted(by_name) == ["made by 0.2", "stopped by 0.2"]
    done, stopped = by_name["made by 0.2"], by_name["stopped by 0.2"]
    assert (done.state, done.epoch, done.epochs, done.model) == ("completed", 2, 2, "tutorial-cnn")
    assert done.test_acc == pytest.approx(json.loads((old_runs / COMPLETED / "test_summary.json").read_text())["accuracy"])
    assert (stopped.state, stopped.epoch, stopped.epochs, stopped.error) == ("stopped", 1, 2, None)


def test_the_completed_runs_predictions_features_and_checkpoint_read_back(old_runs: Path) -> None:
    run = old_runs / COMPLETED
    test = predictions.load_predictions(run, "test")
    summary = json.loads((run / "test_summary.json").read_text())
    assert len(test.labels) == summary["images"]
    assert float((test.pred == test.labels).mean()) == pytest.approx(summary["accuracy"], abs=1e-6)
    assert predictions.val_epochs(run) == [1, 2]
    assert predictions.load_predictions(run, "val", 2).probs.shape[1] == 10

    layout_2d = features.load_map(run)
    assert layout_2d is not None and np.array_equal(np.sort(layout_2d.index), np.sort(test.index))
    assert features.load_features(run, "train") is not None

    # The old checkpoint rebuilds the model that made the saved test predictions.
    images = load_dataset("synthetic").test.images[test.index]
    again = Predictor.from_run(run, torch.device("cpu")).predict(images).argmax(1)
    assert float((again == test.pred).mean()) >= 0.98  # bf16 on one CPU, fp32 on another: a rare tie flips


def test_the_stopped_run_resumes_to_the_end(old_runs: Path) -> None:
    result = resume_run(old_runs, STOPPED, device=torch.device("cpu"))
    assert result.state == "completed"
    summary = next(s for s in catalog.list_runs(old_runs) if s.run_id == STOPPED)
    assert (summary.state, summary.epoch) == ("completed", 2)
    assert predictions.val_epochs(old_runs / STOPPED) == [1, 2]
    assert predictions.load_predictions(old_runs / STOPPED, "test") is not None


def test_the_errors_page_draws_the_old_runs_matrix(old_runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(old_runs))
    at = open_view("views/errors.py", COMPLETED)
    test = predictions.load_predictions(old_runs / COMPLETED, "test")
    right = int((test.pred == test.labels).sum())
    assert f"{len(test.labels):,} pictures, {right:,} right" in " ".join(c.value for c in at.caption)
