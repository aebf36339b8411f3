"""The checkpoint format: a version that is checked, progress stored once, and class names kept in meta.json
so no page opens weights to learn them."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from core.data import SYNTHETIC_CLASSES
from core.rundir import catalog, checkpoints
from core.rundir.checkpoints import Checkpoint
from dashboard import loaders
from tests.helpers import train_tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("runs"), epochs=1)


def test_a_checkpoint_says_its_format_and_keeps_the_progress_once(run):
    payload = checkpoints.load_checkpoint(checkpoints.checkpoint_path(run.run_dir, "last"))
    assert payload["format"] == checkpoints.FORMAT
    assert payload["progress"]["epoch"] == 1 and not {"epoch", "batch", "step"} & payload.keys()
    read = Checkpoint.read(run.run_dir, "last")
    assert read.model == "tutorial-cnn" and read.tta is False
    assert read.classes == list(SYNTHETIC_CLASSES) and len(read.mean) == len(read.std) == 3


def test_a_checkpoint_of_an_unknown_format_is_refused_in_one_sentence(run, tmp_path):
    folder = tmp_path / run.run_dir.name
    shutil.copytree(run.run_dir, folder)
    path = checkpoints.checkpoint_path(folder, "last")
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "format": 99}, path)
    with pytest.raises(catalog.RunError, match=r"has format 99, which this version cannot read \(it reads formats 1, 2\)"):
        Checkpoint.read(folder, "last")


@pytest.mark.parametrize("model", [None, 7, "", ["tutorial-cnn"]])
def test_a_checkpoint_whose_model_is_not_a_name_is_refused_in_one_sentence(run, model):
    payload = checkpoints.load_checkpoint(checkpoints.checkpoint_path(run.run_dir, "last"))
    expected = r"^Checkpoint last.pt of x names the model .*, which is not a model name"
    with pytest.raises(catalog.RunError, match=expected):
        Checkpoint.from_payload({**payload, "model": model}, source="Checkpoint last.pt of x")


def test_which_models_exist_is_not_the_run_folders_question(run):
    """The run folder reads a checkpoint of any architecture; whether this version can build it is inference's."""
    payload = checkpoints.load_checkpoint(checkpoints.checkpoint_path(run.run_dir, "last"))
    assert Checkpoint.from_payload({**payload, "model": "no-such-net"}, source="x").model == "no-such-net"


def test_a_checkpoint_name_from_outside_is_refused(run):
    with pytest.raises(catalog.RunError, match="Checkpoint must be 'last' or 'best'"):
        checkpoints.checkpoint_path(run.run_dir, "../../escape")


def test_class_names_come_from_meta_json_without_weights_or_data(run, tmp_path):
    folder = tmp_path / run.run_dir.name
    shutil.copytree(run.run_dir, folder)
    assert json.loads((folder / "meta.json").read_text())["classes"] == list(SYNTHETIC_CLASSES)
    shutil.rmtree(folder / "checkpoints")
    (folder / "test_summary.json").unlink()
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "data": str(tmp_path / "gone")}))  # data not here
    summary = catalog.summarize_run(folder)
    assert summary.classes == list(SYNTHETIC_CLASSES)
    assert loaders.class_names(summary, len(SYNTHETIC_CLASSES)) == list(SYNTHETIC_CLASSES)


def test_a_wrong_class_list_in_meta_json_makes_the_run_damaged_with_a_sentence(run, tmp_path):
    folder = tmp_path / run.run_dir.name
    shutil.copytree(run.run_dir, folder)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "classes": ["cat", "cat"]}))
    summary = catalog.summarize_run(folder)
    assert summary.state == "damaged" and "classes" in summary.error and "different class names" in summary.error


def test_uploads_are_predicted_in_the_runs_own_precision_and_layout(tmp_path):
    """A bf16 run's test predictions were made under bf16 autocast in channels_last: the Predictor does the same."""
    from core.data import load_dataset
    from core.rundir.predictions import load_predictions
    from core.training.inference import Predictor

    bf16 = train_tiny_run(tmp_path, epochs=1, precision="bf16")
    saved = load_predictions(bf16.run_dir, "test")
    images = load_dataset("synthetic").test.images[saved.index[:50]]
    probs = Predictor.from_run(bf16.run_dir, torch.device("cpu")).predict(images)
    assert np.array_equal(probs.argmax(1), saved.pred[:50]) and np.allclose(probs, saved.probs[:50], atol=1e-6)
