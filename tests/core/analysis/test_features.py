"""The feature map: penultimate features for every registered model, the t-SNE layout and the saved files
(core/training/feature_map.py, core.training.inference.infer_features), and reading them back with the nearest
training pictures (core/analysis/features.py)."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from core.analysis import features
from core.data import Normalizer
from core.jobs import JobManager
from core.rundir import layout, predictions
from core.training import feature_map, models
from core.training.inference import infer, infer_features
from tests.helpers import one_thread, train_tiny_run, wait_for


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    with one_thread():
        yield


@pytest.mark.parametrize("name", models.list_models())
def test_every_registered_model_gives_the_input_of_its_classifier(name):
    torch.manual_seed(0)
    model = models.get_model(name, num_classes=7).eval()
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    normalize = Normalizer((0.5,) * 3, (0.25,) * 3, device=torch.device("cpu"))
    logits, feats = infer_features(model, images, normalize, batch_size=2)  # two batches: caught pieces joined
    head = models.classifier_layer(model)
    assert head.out_features == 7 and feats.shape == (3, head.in_features)
    assert torch.equal(logits, infer(model, images, normalize, batch_size=2))  # the same path as predictions
    scale = getattr(model, "logit_scale", 1.0)  # fastnet scales its head's output
    with torch.no_grad():
        assert torch.allclose(head(feats) * scale, logits, atol=1e-4)
    assert not head._forward_pre_hooks  # the hook is gone afterwards


def test_a_model_without_a_linear_layer_says_it_has_no_features():
    with pytest.raises(ValueError, match="no final linear layer"):
        models.classifier_layer(torch.nn.Conv2d(3, 10, 32))


def test_nearest_is_cosine_on_hand_made_vectors():
    bank = np.array([[1, 0], [0, 1], [10, 1], [-1, 0], [1, 1]], np.float32)
    rows, sims = features.nearest(np.array([2, 0], np.float32), bank, k=3)
    assert rows.tolist() == [0, 2, 4]  # length does not count, only direction
    np.testing.assert_allclose(sims, [1.0, 10 / np.sqrt(101), 1 / np.sqrt(2)], rtol=1e-5)
    assert features.nearest(np.ones(2, np.float32), bank, k=20)[0].shape == (5,)  # k larger than the bank


def test_the_look_alikes_sentence_and_the_box_in_plain_numbers():
    assert features.lookalike_sentence("cat", ["dog"] * 6 + ["cat", "bird"]) == (
        "Your cat sits among these dogs: 6 of its 8 nearest training pictures are dogs.")
    assert features.lookalike_sentence("deer", ["deer"] * 5 + ["horse"] * 3) == (
        "This deer sits among its own kind: 5 of its 8 nearest training pictures are deer.")
    assert features.plural("bus") == "buses"
    xy = np.array([[0, 0], [1, 1], [2, 2], [1, 3]], np.float32)
    assert features.inside_box(xy, (2, 0.5), (0, 2)).tolist() == [1, 2]  # either order, edges included


def test_layout_is_deterministic_and_keeps_groups_apart():
    rng = np.random.default_rng(0)
    groups = np.concatenate([rng.normal(0, 1, (40, 16)), rng.normal(12, 1, (40, 16))]).astype(np.float16)
    xy = feature_map.layout_2d(groups)
    assert xy.shape == (80, 2) and xy.dtype == np.float32
    np.testing.assert_array_equal(xy, feature_map.layout_2d(groups))
    centre_a, centre_b = xy[:40].mean(0), xy[40:].mean(0)
    spread = max(np.linalg.norm(xy[:40] - centre_a, axis=1).max(), np.linalg.norm(xy[40:] - centre_b, axis=1).max())
    assert np.linalg.norm(centre_a - centre_b) > spread  # each group is on its own side of the map
    assert feature_map.layout_2d(groups[:3]).shape == (3, 2)  # too few for t-SNE: still one point each


@pytest.fixture(scope="module")
def mapped_run(tmp_path_factory):
    """A tiny run whose engine saved the feature map at the end of training."""
    return train_tiny_run(tmp_path_factory.mktemp("runs"), name="mapped", epochs=1, feature_map=True).run_dir


def test_the_engine_saves_features_and_map_that_match_the_test_predictions(mapped_run):
    test = predictions.load_predictions(mapped_run, "test")
    feats, train, xy = (features.load_features(mapped_run, "test"), features.load_features(mapped_run, "train"),
                        features.load_map(mapped_run))
    with np.load(layout.features(mapped_run, "test")) as saved:
        assert saved["features"].dtype == np.float16
    assert feats.values.shape == (len(test.labels), 84)  # tutorial-cnn: fc3's input has 84 numbers
    np.testing.assert_array_equal(feats.index, test.index)
    np.testing.assert_array_equal(xy.index, test.index)
    np.testing.assert_array_equal(xy.labels, test.labels)
    assert xy.values.shape == (len(test.labels), 2)
    val_index = np.load(layout.val_labels(mapped_run))["index"]
    assert not set(train.index) & set(val_index) and len(train.index) + len(val_index) == 2000  # training split only


def test_computing_later_gives_the_same_files_written_atomically(mapped_run, tmp_path, monkeypatch):
    paths = [layout.features(mapped_run, "test"), layout.features(mapped_run, "train"), layout.feature_map(mapped_run)]
    before = {path: np.load(path) for path in paths}
    written = []
    real = predictions.write_atomically  # the one .npz writer, predictions.save_npz, writes through it
    monkeypatch.setattr(predictions, "write_atomically",
                        lambda path, write: (written.append(path.name), real(path, write)))
    reports = []
    feature_map.compute_run_features(mapped_run, torch.device("cpu"), lambda f, m: reports.append((f, m)))
    assert written == [path.name for path in paths]
    for path, old in before.items():
        with np.load(path) as new:
            for key in old.files:
                np.testing.assert_array_equal(new[key], old[key])
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert not list(layout.predictions_dir(mapped_run).glob(".*.tmp"))


def test_a_stop_leaves_no_files_and_an_old_run_gets_its_map_as_a_job(tmp_path):
    run = train_tiny_run(tmp_path, name="old", epochs=1).run_dir  # as made before the map existed
    assert not features.has_map(run)
    stop = threading.Event()
    stop.set()
    with pytest.raises(feature_map.FeaturesStopped):
        feature_map.compute_run_features(run, torch.device("cpu"), stop=stop)
    assert not list(layout.predictions_dir(run).glob("*features*")) and not features.has_map(run)
    manager = JobManager(tmp_path)
    job = manager.compute_map(run.name)
    wait_for(lambda: job.state != "running")
    assert (job.state, job.error, job.fraction) == ("done", None, 1.0) and features.has_map(run)
    assert manager.map_job(run.name) is job


def test_a_k_fold_runs_map_computed_later_leaves_its_held_out_fold_out_of_the_training_features(tmp_path):
    run = train_tiny_run(tmp_path, name="fold", epochs=1, folds=4, fold=1).run_dir
    feature_map.compute_run_features(run, torch.device("cpu"))
    train = features.load_features(run, "train")
    held_out = np.load(layout.val_labels(run))["index"]
    assert len(held_out) == 500 and not set(train.index) & set(held_out)  # a quarter of the 2,000, not 10%
    assert len(train.index) + len(held_out) == 2000
