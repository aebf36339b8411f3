"""Batch augmentations for CIFAR-sized images: pure, vectorised functions of a tensor and a generator.

Every function takes a whole batch `(B, C, H, W)` on any device (uint8 or float) and draws its
randomness from the `torch.Generator` it is given, so the same generator state gives the same
output. There is no per-image Python loop. `DeviceLoader` (core/data/loader.py) composes them with `apply`
on uint8 batches, before the conversion to float, where they are cheapest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

FLIP_MODES = ("none", "random", "alternating")


@dataclass(frozen=True)
class Augment:
    """Which augmentations the training loader applies (all off = plain shuffled batches)."""

    crop_padding: int = 4  # random translation by up to this many pixels (reflect padding); 0 = off
    flip: str = "random"  # "none" | "random" | "alternating" horizontal flips
    cutout: int = 0  # side in pixels of a square set to the mean colour at a random place; 0 = off

    def __post_init__(self) -> None:
        if not isinstance(self.crop_padding, int) or not 0 <= self.crop_padding <= 16:
            raise ValueError(f"crop_padding={self.crop_padding!r} is invalid; use an integer from 0 to 16.")
        if self.flip not in FLIP_MODES:
            raise ValueError(f"flip={self.flip!r} is invalid; choose one of: {', '.join(FLIP_MODES)}.")
        if not isinstance(self.cutout, int) or not 0 <= self.cutout <= 32:
            raise ValueError(f"cutout={self.cutout!r} is invalid; use an integer from 0 to 32.")

    @property
    def active(self) -> bool:
        """True when at least one augmentation is switched on."""
        return self.crop_padding > 0 or self.flip != "none" or self.cutout > 0


# ---------------------------------------------------------------------------------------------
# Crop
# ---------------------------------------------------------------------------------------------


def _reflect(index: Tensor, size: int) -> Tensor:
    """Map indices in [-(size-1), 2*size-2] into [0, size) like reflect padding (edge not repeated)."""
    index = index.abs()
    return torch.where(index >= size, 2 * (size - 1) - index, index)


def random_crop(
    images: Tensor, padding: int, generator: torch.Generator, flip: Tensor | None = None
) -> Tensor:
    """Random same-size window of each reflect-padded image: a translation by up to `padding` px.

    Implemented as one gather with reflected indices, so the padded batch is never materialised and
    uint8 works on every device. `flip` (B,) bool optionally mirrors those images in the same gather;
    the result equals `random_crop(hflip(images, flip), ...)` at half the memory traffic.
    """
    if padding == 0:
        return images if flip is None else hflip(images, flip)
    b, _, h, w = images.shape
    if not 0 < padding < min(h, w):
        raise ValueError(f"padding={padding} is invalid for {h}x{w} images; use 0 to {min(h, w) - 1}.")
    device = images.device
    dy = torch.randint(-padding, padding + 1, (b,), generator=generator, device=device)  # (B,)
    dx = torch.randint(-padding, padding + 1, (b,), generator=generator, device=device)  # (B,)
    rows = _reflect(torch.arange(h, device=device)[None, :] + dy[:, None], h)  # (B, H)
    cols = _reflect(torch.arange(w, device=device)[None, :] + dx[:, None], w)  # (B, W)
    if flip is not None:
        cols = torch.where(flip[:, None], w - 1 - cols, cols)  # read mirrored columns
    batch = torch.arange(b, device=device)[:, None, None]  # (B, 1, 1)
    # Advanced indices around the channel slice put the batch/row/col dims first.
    out = images[batch, :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)  # (B, C, H, W), channels_last strides


# ---------------------------------------------------------------------------------------------
# Flip
# ---------------------------------------------------------------------------------------------


def flip_mask(n: int, epoch: int, mode: str, generator: torch.Generator | None) -> Tensor:
    """Which of `n` images to flip horizontally this epoch, as a (n,) bool tensor.

    "random": a fresh coin per image. "alternating": per-image base coins that depend only on the
    generator's seed, XOR (epoch is odd), so every epoch flips exactly the images the previous one did
    not (airbench's trick: each image is seen both ways over any two epochs). For "alternating" the
    caller must pass a generator seeded the same way in every epoch.
    """
    if mode not in FLIP_MODES:
        raise ValueError(f"flip mode {mode!r} is invalid; choose one of: {', '.join(FLIP_MODES)}.")
    device = generator.device if generator is not None else torch.device("cpu")
    if mode == "none":
        return torch.zeros(n, dtype=torch.bool, device=device)
    if generator is None:
        raise ValueError(f"flip mode {mode!r} needs a torch.Generator; pass one.")
    coins = torch.rand(n, generator=generator, device=device) < 0.5  # (n,)
    if mode == "alternating":
        return coins ^ bool(epoch % 2)
    return coins


def hflip(images: Tensor, mask: Tensor) -> Tensor:
    """Mirror left-right the images where `mask` (B,) is True; the others are returned unchanged."""
    return torch.where(mask.view(-1, 1, 1, 1), images.flip(-1), images)  # (B, C, H, W)


# ---------------------------------------------------------------------------------------------
# Cutout
# ---------------------------------------------------------------------------------------------


def cutout(images: Tensor, size: int, generator: torch.Generator, fill: float | Tensor = 0) -> Tensor:
    """Set a `size` x `size` square at a uniformly random centre of each image to `fill`.

    The centre can be anywhere in the image, so near a border the square is clipped (DeVries & Taylor
    2017). `fill` is a scalar or a per-channel (C,) tensor; the loader passes the mean colour, which
    becomes 0 after normalisation.
    """
    if size == 0:
        return images
    b, c, h, w = images.shape
    device = images.device
    cy = torch.randint(0, h, (b,), generator=generator, device=device)  # (B,)
    cx = torch.randint(0, w, (b,), generator=generator, device=device)  # (B,)
    top, left = cy - size // 2, cx - size // 2  # (B,)
    ys, xs = torch.arange(h, device=device), torch.arange(w, device=device)
    in_rows = (ys[None, :] >= top[:, None]) & (ys[None, :] < top[:, None] + size)  # (B, H)
    in_cols = (xs[None, :] >= left[:, None]) & (xs[None, :] < left[:, None] + size)  # (B, W)
    square = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # (B, 1, H, W)
    fill_t = torch.as_tensor(fill, dtype=images.dtype, device=device).reshape(-1)  # (C,) or (1,)
    return torch.where(square, fill_t.view(1, -1, 1, 1).expand(1, c, 1, 1), images)  # (B, C, H, W)


# ---------------------------------------------------------------------------------------------
# Composition
# ---------------------------------------------------------------------------------------------


def apply(
    images: Tensor,
    augment: Augment,
    epoch: int,
    generator: torch.Generator,
    *,
    flip_base: Tensor | None = None,
    fill: float | Tensor = 0,
) -> Tensor:
    """Flip, then crop, then cutout one batch (B, C, H, W); randomness drawn from `generator` in that order.

    Flip and crop run as one gather; the result is the same as hflip, then random_crop, then cutout.

    For alternating flips, `flip_base` (B,) holds each image's base coin (fixed per image for the
    whole run); without it the base coins are drawn from `generator`.
    """
    mask = None
    if augment.flip == "alternating" and flip_base is not None:
        mask = flip_base ^ bool(epoch % 2)  # (B,)
    elif augment.flip != "none":
        mask = flip_mask(images.shape[0], epoch, augment.flip, generator)  # (B,)
    images = random_crop(images, augment.crop_padding, generator, flip=mask)
    return cutout(images, augment.cutout, generator, fill)
