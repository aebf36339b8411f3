"""Test-time augmentation in `infer`: weighted views, and the plain path untouched."""
import pytest
import torch
from torch import nn

from core.data import Normalizer
from core.training.inference import UNSHIFTED_WEIGHT, _tta_views, infer


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
