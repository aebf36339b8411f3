"""Grad-CAM ("where it looked", core/analysis/saliency.py): a known case, every registered model's layer, the colouring."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.analysis import saliency
from core.data import Normalizer
from core.training.models import cam_layer_of, get_model, list_models

CPU = torch.device("cpu")
SIDE, SQUARE = 32, 10
CORNERS = [(slice(0, SQUARE), slice(0, SQUARE)), (slice(0, SQUARE), slice(-SQUARE, None)),
           (slice(-SQUARE, None), slice(0, SQUARE)), (slice(-SQUARE, None), slice(-SQUARE, None))]
CORNER_MODEL, EPOCHS, TRAIN_PICTURES = "keras-cnn", 3, 256  # the smallest registered model that learns the corners in a few seconds
QUADRANTS = [(slice(0, 16), slice(0, 16)), (slice(0, 16), slice(16, None)),
             (slice(16, None), slice(0, 16)), (slice(16, None), slice(16, None))]


def corner_pictures(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Dim noise pictures whose class (0-3) is the corner holding a bright white square; class 4 has none.

    The empty class makes each corner class need its own square: without it, "no square on the right"
    would be enough to answer "left", and a map of that answer rightly lies everywhere.
    """
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 90, size=(n, SIDE, SIDE, 3), dtype=np.uint8)
    labels = rng.integers(0, len(CORNERS) + 1, size=n)
    for image, label in zip(images, labels):
        if label < len(CORNERS):
            rows, cols = CORNERS[label]
            image[rows, cols] = 255
    return images, labels


def unit_normalizer() -> Normalizer:
    return Normalizer((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), device=CPU)


@pytest.fixture(scope="module")
def corner_model() -> torch.nn.Module:
    """The registered Keras-notebook CNN trained until it tells the four corners (and no square) apart."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as conftest's torch_single_thread: steadier on the shared test machine
    torch.manual_seed(0)
    model, normalize = get_model(CORNER_MODEL, num_classes=len(CORNERS) + 1), unit_normalizer()
    images, labels = corner_pictures(TRAIN_PICTURES, seed=1)
    x = normalize(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())  # (N, 3, 32, 32)
    y = torch.from_numpy(labels)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(EPOCHS):
        for start in range(0, len(x), 64):
            loss = torch.nn.functional.cross_entropy(model(x[start:start + 64]), y[start:start + 64])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.zero_grad(set_to_none=True)
    torch.set_num_threads(threads)
    return model.eval()


def test_the_map_of_a_corner_class_lies_in_that_corner(corner_model):
    images, labels = corner_pictures(60, seed=2)
    with torch.no_grad():
        x = unit_normalizer()(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())
        accuracy = (corner_model(x).argmax(1).numpy() == labels).mean()
    assert accuracy > 0.95  # the known case needs a model that learned it
    images, labels = images[labels < len(CORNERS)], labels[labels < len(CORNERS)]
    maps = saliency.grad_cam(corner_model, CORNER_MODEL, unit_normalizer(), images, labels, CPU, batch_size=16)
    assert maps.shape == (len(images), SIDE, SIDE) and maps.dtype == np.float32
    shares = np.array([m[QUADRANTS[c]].sum() / m.sum() for m, c in zip(maps, labels)])
    # A quarter of the picture, the square's corner, holds most of each map's mass (evenly spread: 25%).
    assert (shares > 0.7).mean() > 0.9, shares.round(2)


def test_grad_cam_leaves_no_gradient_and_keeps_the_mode(corner_model):
    corner_model.train()
    images, labels = corner_pictures(5, seed=3)
    saliency.grad_cam(corner_model, CORNER_MODEL, unit_normalizer(), images, labels, CPU)
    assert corner_model.training
    assert all(p.grad is None for p in corner_model.parameters())
    corner_model.eval()


@pytest.mark.usefixtures("torch_single_thread")
@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_names_a_layer_with_a_spatial_map(name):
    torch.manual_seed(0)
    model = get_model(name, num_classes=10).eval()
    if hasattr(model, "init_from_data"):  # fastnet's whitening is set from data before its first use
        model.init_from_data(torch.randn(64, 3, 32, 32))
    seen = []
    hook = cam_layer_of(model, name).register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    images = np.random.default_rng(0).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    maps = saliency.grad_cam(model, name, unit_normalizer(), images, [0, 4, 9], CPU)
    hook.remove()
    assert len(seen[0]) == 4 and min(seen[0][2:]) >= 4  # (B, C, H, W) with a map of at least 4x4
    assert maps.shape == (3, 32, 32) and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1


def test_an_unknown_layer_or_bad_input_is_one_sentence(monkeypatch):
    model = get_model("tutorial-cnn")
    with pytest.raises(ValueError, match="uint8 pictures"):
        saliency.grad_cam(model, "tutorial-cnn", unit_normalizer(), np.zeros((2, 32, 32, 3)), [0, 1], CPU)
    with pytest.raises(ValueError, match="one class per picture"):
        saliency.grad_cam(model, "tutorial-cnn", unit_normalizer(), np.zeros((2, 32, 32, 3), np.uint8), [0], CPU)
    from core.training.models import registry
    spec = registry._REGISTRY["tutorial-cnn"]
    monkeypatch.setitem(registry._REGISTRY, "tutorial-cnn", type(spec)(**{**spec.__dict__, "cam_layer": "conv9"}))
    with pytest.raises(ValueError, match="has no such module"):
        cam_layer_of(model, "tutorial-cnn")


def test_jet_runs_from_blue_to_red_and_overlay_blends_on_the_enlarged_picture():
    cold, hot = saliency.jet(np.array([0.0, 1.0]))
    assert cold[2] > 100 and cold[0] == 0 and hot[0] > 100 and hot[2] == 0
    image = np.full((32, 32, 3), 200, np.uint8)
    heat = np.zeros((32, 32), np.float32)
    heat[:16] = 1.0
    shown = saliency.overlay(image, heat, scale=4)
    assert shown.shape == (128, 128, 3) and shown.dtype == np.uint8
    assert shown[0, 0, 0] > shown[0, 0, 2] and shown[-1, -1, 2] > shown[-1, -1, 0]  # hot top, cold bottom
    with pytest.raises(ValueError, match="does not fit"):
        saliency.overlay(image, heat[:8])
