"""Tests for core.data.augment: each augmentation checked against an independent reference on CPU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core.data import augment as aug
from core.data.augment import Augment

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(n: int = 64, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=_gen(seed))  # (B, C, H, W)


def _window_offsets(out: torch.Tensor, images: torch.Tensor, padding: int) -> list[set[tuple[int, int]]]:
    """For each output image, the offsets (oy, ox) of the reflect-padded input windows it equals."""
    h, w = images.shape[-2:]
    padded = F.pad(images.float(), (padding,) * 4, mode="reflect")  # (B, C, H+2p, W+2p), the reference
    found: list[set[tuple[int, int]]] = [set() for _ in range(len(images))]
    for oy in range(2 * padding + 1):
        for ox in range(2 * padding + 1):
            same = (padded[:, :, oy:oy + h, ox:ox + w] == out.float()).flatten(1).all(1)  # (B,)
            for i in same.nonzero().flatten().tolist():
                found[i].add((oy, ox))
    return found


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, field",
    [({"crop_padding": -1}, "crop_padding"), ({"crop_padding": 2.5}, "crop_padding"),
     ({"flip": "sometimes"}, "flip"), ({"cutout": -3}, "cutout"), ({"cutout": 40}, "cutout")],
)
def test_augment_rejects_bad_values_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Augment(**kwargs)


def test_augment_active_only_when_something_is_on() -> None:
    assert not Augment(crop_padding=0, flip="none", cutout=0).active
    assert Augment(crop_padding=0, flip="none", cutout=4).active
    assert Augment().active


# ---------------------------------------------------------------------------------------------
# Flip
# ---------------------------------------------------------------------------------------------


def test_hflip_flips_exactly_the_masked_images() -> None:
    images = _images(16)
    mask = torch.arange(16) % 3 == 0
    out = aug.hflip(images, mask)
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert torch.equal(out[mask], torch.flip(images[mask], dims=[-1]))
    assert torch.equal(out[~mask], images[~mask])


def test_flip_mask_modes() -> None:
    assert not aug.flip_mask(100, 0, "none", None).any()
    coins = aug.flip_mask(1000, 0, "random", _gen(1))
    assert coins.dtype == torch.bool and 400 < int(coins.sum()) < 600
    even = aug.flip_mask(1000, 2, "alternating", _gen(5))
    odd = aug.flip_mask(1000, 3, "alternating", _gen(5))
    assert torch.equal(odd, ~even)
    assert torch.equal(aug.flip_mask(1000, 4, "alternating", _gen(5)), even)
    with pytest.raises(ValueError, match="flip mode"):
        aug.flip_mask(10, 0, "upside-down", _gen())


# ---------------------------------------------------------------------------------------------
# Crop
# ---------------------------------------------------------------------------------------------


def test_random_crop_is_a_window_of_the_reflect_padded_image() -> None:
    images, padding = _images(64), 4
    out = aug.random_crop(images, padding, _gen(3))
    assert out.shape == images.shape and out.dtype == torch.uint8
    offsets = _window_offsets(out, images, padding)
    assert all(offsets), "every output must equal some window at an offset within the padding"
    assert len(set.union(*offsets)) > 10, "offsets should vary between images"


def test_random_crop_zero_padding_is_identity_and_bad_padding_raises() -> None:
    images = _images(4)
    assert torch.equal(aug.random_crop(images, 0, _gen()), images)
    with pytest.raises(ValueError, match="padding"):
        aug.random_crop(images, 32, _gen())


def test_random_crop_with_flip_equals_flip_then_crop() -> None:
    images = _images(32)
    mask = torch.arange(32) % 2 == 0
    fused = aug.random_crop(images, 3, _gen(7), flip=mask)
    sequential = aug.random_crop(aug.hflip(images, mask), 3, _gen(7))
    assert torch.equal(fused, sequential)


def test_random_crop_works_on_float_and_non_square() -> None:
    images = torch.rand(8, 3, 20, 28, generator=_gen())
    out = aug.random_crop(images, 2, _gen(1))
    assert out.shape == images.shape and out.dtype == torch.float32
    assert all(_window_offsets(out, images, 2))


# ---------------------------------------------------------------------------------------------
# Cutout
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [8, 5])
def test_cutout_zeroes_exactly_a_square_clipped_at_borders(size: int) -> None:
    images = torch.full((300, 3, 32, 32), 255, dtype=torch.uint8)
    out = aug.cutout(images, size, _gen(11))
    zero = out == 0  # (B, C, H, W)
    assert torch.equal(zero, zero[:, :1].expand_as(zero)), "all channels are cut at the same pixels"
    assert bool(((out == 0) | (out == 255)).all()), "pixels outside the square are untouched"
    zero = zero[:, 0]  # (B, H, W)
    rows, cols = zero.any(2), zero.any(1)  # (B, H), (B, W)
    assert torch.equal(zero, rows[:, :, None] & cols[:, None, :]), "the cut region is a rectangle"
    clipped = 0
    for r, c in zip(rows, cols):
        r_idx, c_idx = r.nonzero().flatten(), c.nonzero().flatten()
        assert len(r_idx) and len(c_idx), "every image gets a cut"
        assert int(r_idx[-1] - r_idx[0]) + 1 == len(r_idx) and int(c_idx[-1] - c_idx[0]) + 1 == len(c_idx)
        for idx in (r_idx, c_idx):
            touches_border = int(idx[0]) == 0 or int(idx[-1]) == 31
            assert len(idx) == size or (touches_border and len(idx) < size)
            clipped += len(idx) < size
    assert clipped > 0, "with 300 images some squares must be clipped at a border"


def test_cutout_fill_per_channel_and_size_zero() -> None:
    images = torch.full((50, 3, 16, 16), 255, dtype=torch.uint8)
    assert torch.equal(aug.cutout(images, 0, _gen()), images)
    fill = torch.tensor([10, 20, 30], dtype=torch.uint8)
    out = aug.cutout(images, 4, _gen(), fill=fill)
    cut = (out != 255).all(1)  # (B, H, W)
    assert cut.any(dim=(1, 2)).all()
    assert torch.equal(out.permute(0, 2, 3, 1)[cut], fill.expand(int(cut.sum()), 3))


# ---------------------------------------------------------------------------------------------
# Composition
# ---------------------------------------------------------------------------------------------


def test_apply_is_deterministic_and_matches_the_sequential_composition() -> None:
    images = _images(40)
    augment = Augment(crop_padding=4, flip="random", cutout=6)
    first = aug.apply(images, augment, 0, _gen(9))
    assert torch.equal(first, aug.apply(images, augment, 0, _gen(9)))
    assert not torch.equal(first, aug.apply(images, augment, 0, _gen(10)))
    g = _gen(9)  # same draws in the documented order: flip coins, crop offsets, cutout centres
    mask = aug.flip_mask(40, 0, "random", g)
    expected = aug.cutout(aug.random_crop(aug.hflip(images, mask), 4, g), 6, g)
    assert torch.equal(first, expected)


def test_apply_alternating_uses_the_given_base_coins() -> None:
    images = _images(10)
    base = torch.arange(10) < 4
    augment = Augment(crop_padding=0, flip="alternating")
    assert torch.equal(aug.apply(images, augment, 0, _gen(), flip_base=base), aug.hflip(images, base))
    assert torch.equal(aug.apply(images, augment, 1, _gen(), flip_base=base), aug.hflip(images, ~base))


def test_apply_with_everything_off_returns_the_input() -> None:
    images = _images(5)
    assert torch.equal(aug.apply(images, Augment(crop_padding=0, flip="none"), 3, _gen()), images)
