"""Batches on the device: one Normalizer for training and inference, and DeviceLoader, which keeps a whole
split on the device as uint8 and serves shuffled, augmented, normalised batches from there."""
from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from core.data import augment as aug
from core.data.augment import Augment
from core.data.split import LUMA


def _check_stats(mean: Sequence[float], std: Sequence[float]) -> None:
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"mean={tuple(mean)} and std={tuple(std)} are invalid; give 3 values each, std > 0.")


class Normalizer:
    """uint8 (B, 3, H, W) -> float normalised with the training mean and std, on `device`.

    The scale and shift tensors are made once, on the device: building them per batch from Python
    numbers would copy them from the host, and wait for it, every batch. The training loader, the
    evaluation and the dashboard's predictions each hold one of these.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], *, device: torch.device | str,
                 grayscale: bool = False, dtype: torch.dtype = torch.float32, channels_last: bool = False):
        _check_stats(mean, std)
        self.grayscale, self.dtype = grayscale, dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.scale, self.shift = 1 / (255 * s), -m / s  # x * scale + shift == (x / 255 - mean) / std

    def __call__(self, x: Tensor) -> Tensor:
        """Optional luminance, then x * scale + shift in float32, then cast (and channels_last if asked)."""
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"normalize needs a (B, 3, H, W) uint8 tensor; got {tuple(x.shape)} {x.dtype}.")
        x = x.to(self.scale.device)
        if self.grayscale:
            x = x.float()  # (B, 3, H, W)
            r, g, b = LUMA
            luma = x[:, 0:1] * r + x[:, 1:2] * g + x[:, 2:3] * b  # (B, 1, H, W)
            x = luma * self.scale + self.shift  # (B, 3, H, W): 3 equal channels so every model works unchanged
        else:
            # One pass converts and lays out; in-place maths after (addcmul with broadcasting is slow on CPU).
            x = x.to(torch.float32, memory_format=self.memory_format).mul_(self.scale).add_(self.shift)
        return x.to(dtype=self.dtype, memory_format=self.memory_format)


def normalize_images(
    x_uint8: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    grayscale: bool = False,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> Tensor:
    """(B, 3, H, W) uint8 -> normalised float on x's device, once (a Normalizer when there are more batches)."""
    return Normalizer(mean, std, device=x_uint8.device, grayscale=grayscale, dtype=dtype,
                      channels_last=channels_last)(x_uint8)


def _as_tensor(array: np.ndarray | Tensor) -> Tensor:
    """A tensor view of `array` (copied only when numpy marks it read-only, which torch cannot share)."""
    if isinstance(array, Tensor):
        return array
    array = np.asarray(array)
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def _seed(*key: object) -> int:
    """A 63-bit seed that is a pure function of `key` (stable across processes, unlike hash())."""
    return int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:8], "little") & (2**63 - 1)


class DeviceLoader:
    """Whole split resident on `device` as uint8; shuffles and augments there, no per-image Python.

    Train: `DeviceLoader(x, y, batch_size=..., device=..., shuffle=True, augment=Augment(...))`;
    eval: `shuffle=False, augment=None` yields the images in order. Batches of epoch e, batch b depend
    only on (seed, e, b), so `epoch(e, start_batch=k)` resumes mid-epoch exactly.
    Public attributes: `images` (N, 3, H, W) uint8 and `labels` (N,) int64, both on `device`, and
    `normalize`, the Normalizer its batches go through (the engine evaluates with the same one).
    """

    def __init__(
        self,
        images: np.ndarray | Tensor,
        labels: np.ndarray | Tensor,
        *,
        batch_size: int,
        device: torch.device | str,
        shuffle: bool,
        augment: Augment | None = None,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        grayscale: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        images, labels = _as_tensor(images), _as_tensor(labels)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"DeviceLoader needs (N, H, W, 3) uint8 images; got {tuple(images.shape)} {images.dtype}."
            )
        if len(labels) != len(images):
            raise ValueError(
                f"DeviceLoader got {len(images)} images but {len(labels)} labels; give one label per image."
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} is invalid; use a positive integer.")
        self.device = torch.device(device)
        # Checks mean and std before anything is copied to the device.
        self.normalize = Normalizer(mean, std, device=self.device, grayscale=grayscale, dtype=dtype,
                                    channels_last=channels_last)  # (B, 3, H, W) uint8 -> normalised `dtype`
        self.images = images.to(self.device).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W) uint8
        self.labels = labels.to(self.device, torch.int64)  # (N,)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.augment = augment if augment is not None and augment.active else None
        self.drop_last = drop_last
        # Cutout paints the mean colour, which normalises to 0 (as in the Cutout paper).
        self._fill = torch.tensor([round(255 * m) for m in mean], device=self.device).clamp(0, 255).to(torch.uint8)
        self._flip_base = None  # per-image base coins for alternating flips, fixed for the whole run
        if self.augment is not None and self.augment.flip == "alternating":
            self._flip_base = aug.flip_mask(len(self.images), 0, "alternating", self._generator("flip-base"))

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _generator(self, *key: object) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        generator.manual_seed(_seed(self.seed, *key))
        return generator

    def _order(self, epoch: int) -> Tensor | None:
        """This epoch's permutation (N,), or None when not shuffling (batches are then plain slices)."""
        if not self.shuffle:
            return None
        return torch.randperm(len(self.images), generator=self._generator("perm", epoch), device=self.device)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield (x (B, 3, H, W) float normalised, y (B,) int64) on the device for batches start_batch.. of `epoch`."""
        if not isinstance(start_batch, int) or not 0 <= start_batch <= len(self):
            raise ValueError(f"start_batch={start_batch!r} is invalid; use 0 to {len(self)} (batches per epoch).")
        return self._batches(epoch, start_batch)

    def _batches(self, epoch: int, start_batch: int) -> Iterator[tuple[Tensor, Tensor]]:
        order = self._order(epoch)
        for b in range(start_batch, len(self)):
            window = slice(b * self.batch_size, (b + 1) * self.batch_size)
            idx = order[window] if order is not None else window  # (B,) or a slice
            x = self.images[idx]  # (B, 3, H, W) uint8
            if self.augment is not None:
                flip_base = self._flip_base[idx] if self._flip_base is not None else None  # (B,)
                x = aug.apply(x, self.augment, epoch, self._generator("batch", epoch, b),
                              flip_base=flip_base, fill=self._fill)
            yield self.normalize(x), self.labels[idx]
