"""The inference path: test-time augmentation in `infer` (weighted views, the plain path untouched), per-class
accuracy, the checkpoint a run was tested with, and the Predictor's model check."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from core.data import Normalizer
from core.rundir import layout
from core.rundir.checkpoints import Checkpoint
from core.rundir.records import RunError
from core.training.inference import (UNSHIFTED_WEIGHT, Predictor, _tta_views, class_accuracy, evaluated_checkpoint,
                                     infer)
from core.training.models import list_models


def _images(n: int = 3) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(10))


def test_the_weights_sum_to_one_and_the_unshifted_pair_weighs_half():
    x = torch.randn(2, 3, 8, 8)
    views = _tta_views(x)
    weights = [w for _, w in views]
    assert len(views) == 6 and sum(weights) == pytest.approx(1.0)
    unshifted = [w for v, w in views if torch.equal(v, x) or torch.equal(v, x.flip(-1))]
    assert unshifted == [0.25, 0.25] and UNSHIFTED_WEIGHT == 0.5
    assert sorted(weights)[:4] == [0.125] * 4  # the four shifted views share the other half


def test_infer_combines_the_views_by_their_weights_and_the_plain_path_is_the_model():
    model, images = _model(), _images()
    normalize = Normalizer((0.5,) * 3, (0.25,) * 3, device="cpu")
    x = normalize(images)
    with torch.no_grad():
        model(x)  # materialise the lazy layer
        expected = sum(w * model(v) for v, w in _tta_views(x))
        plain = model(x)
    torch.testing.assert_close(infer(model, images, normalize, tta=True), expected)
    assert torch.equal(infer(model, images, normalize, tta=False), plain)


def test_class_accuracy_is_each_classes_share_right_and_nan_without_pictures():
    accuracy = class_accuracy(np.array([0, 0, 0, 1, 1]), np.array([0, 0, 1, 0, 0]), 3)
    np.testing.assert_allclose(accuracy[:2], [2 / 3, 0.0])
    assert np.isnan(accuracy[2])  # no picture of class 2: no share to give
    with pytest.raises(ValueError, match="class numbers from 0 to 2"):
        class_accuracy(np.array([0, 3]), np.array([0, 0]), 3)
    with pytest.raises(ValueError, match="same length"):
        class_accuracy(np.array([0, 1]), np.array([0]), 3)


def test_the_evaluated_checkpoint_is_best_after_early_stopping_else_last(tmp_path):
    assert evaluated_checkpoint(tmp_path) is None  # nothing saved yet
    layout.checkpoints_dir(tmp_path).mkdir()
    for name in ("last", "best"):
        layout.checkpoint(tmp_path, name).write_bytes(b"")
    assert evaluated_checkpoint(tmp_path) == "last"  # no test yet: the latest weights
    summary = {"accuracy": 0.5, "loss": 1.0, "early_stopped": True}
    layout.test_summary(tmp_path).write_text(json.dumps(summary))
    assert evaluated_checkpoint(tmp_path) == "best"  # the engine tested the best weights
    layout.checkpoint(tmp_path, "best").unlink()
    assert evaluated_checkpoint(tmp_path) == "last"


def test_a_checkpoint_of_a_model_this_version_lacks_is_refused_in_one_sentence():
    checkpoint = Checkpoint(model="no-such-net", classes=["a", "b"], mean=[0.5] * 3, std=[0.25] * 3, grayscale=False,
                            tta=False, precision="fp32", weights={}, source="Checkpoint last.pt of old")
    with pytest.raises(RunError) as err:
        Predictor(checkpoint, torch.device("cpu"))
    assert str(err.value) == ("Checkpoint last.pt of old names the model 'no-such-net', which is not one this version "
                              f"knows ({', '.join(list_models())}).")
