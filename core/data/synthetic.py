"""The synthetic source: a small generated 10-class set of coloured shapes, for tests and offline smoke runs."""
from __future__ import annotations

import numpy as np

from core.data.images import IMAGE_SIZE
from core.data.sets import Arrays

SYNTHETIC_VERSION = 1
SYNTHETIC_TRAIN_PER_CLASS, SYNTHETIC_TEST_PER_CLASS = 200, 50
SYNTHETIC_CLASSES: tuple[str, ...] = (
    "red-square", "orange-disc", "yellow-triangle", "green-plus", "cyan-ring",
    "blue-hstripes", "purple-vstripes", "pink-diamond", "white-checker", "brown-x",
)
_SYNTHETIC_COLOURS = np.array([
    (220, 40, 40), (240, 140, 20), (230, 220, 40), (40, 180, 60), (40, 200, 210),
    (40, 80, 220), (140, 60, 200), (240, 110, 180), (235, 235, 235), (140, 90, 40),
], dtype=np.float32)


def _shape_mask(label: int, dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Pixels inside class `label`'s shape; dy, dx (n, 32, 32) offsets from the centre, r (n, 1, 1) radius."""
    ay, ax = np.abs(dy), np.abs(dx)
    box = (ay <= r) & (ax <= r)
    if label in (1, 4):
        dist = np.hypot(dy, dx)
        return (dist <= r) & (dist >= 0.55 * r) if label == 4 else dist <= r  # ring / disc
    stripes_y, stripes_x = ((dy + r) // 3) % 2 == 0, ((dx + r) // 3) % 2 == 0  # 3 px bands
    masks = {
        0: lambda: box,
        2: lambda: (ay <= r) & (ax <= (dy + r) / 2),  # triangle pointing up
        3: lambda: ((ax <= r / 3) & (ay <= r)) | ((ay <= r / 3) & (ax <= r)),
        5: lambda: box & stripes_y,
        6: lambda: box & stripes_x,
        7: lambda: ax + ay <= r,
        8: lambda: box & (stripes_x == stripes_y),
        9: lambda: box & (np.abs(ax - ay) <= 1.5),
    }
    return masks[label]()


def _synthetic_split(rng: np.random.Generator, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` images of each class in random order: dark noisy background, class colour + shape."""
    labels = rng.permutation(np.repeat(np.arange(len(SYNTHETIC_CLASSES)), per_class))  # (n,)
    n = len(labels)
    r = rng.uniform(6.0, 10.0, size=(n, 1, 1)).astype(np.float32)  # shape radius in px
    cy = rng.uniform(r, IMAGE_SIZE - 1 - r).astype(np.float32)  # (n, 1, 1) random position
    cx = rng.uniform(r, IMAGE_SIZE - 1 - r).astype(np.float32)
    grid = np.arange(IMAGE_SIZE, dtype=np.float32)
    dy, dx = grid[None, :, None] - cy, grid[None, None, :] - cx  # (n, 32, 1), (n, 1, 32)
    dy, dx = np.broadcast_arrays(dy, dx)  # (n, 32, 32) each
    inside = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    for label in range(len(SYNTHETIC_CLASSES)):  # a loop over classes, not images
        rows = labels == label
        inside[rows] = _shape_mask(label, dy[rows], dx[rows], r[rows])
    background = rng.uniform(0, 90, size=(n, 1, 1, 3)).astype(np.float32)  # (n, 1, 1, 3)
    jitter = rng.standard_normal((n, 1, 1, 3), dtype=np.float32) * 15  # per-image colour shift
    colour = _SYNTHETIC_COLOURS[labels][:, None, None, :] + jitter  # (n, 1, 1, 3)
    images = np.where(inside[..., None], colour, background)  # (n, 32, 32, 3) float32
    images += rng.standard_normal(images.shape, dtype=np.float32) * 12  # pixel noise
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)


def make_synthetic(seed: int = 0) -> Arrays:
    """The synthetic set: 2,000 train / 500 test images, 10 balanced classes, deterministic for a seed."""
    rng = np.random.default_rng([SYNTHETIC_VERSION, seed])
    train_images, train_labels = _synthetic_split(rng, SYNTHETIC_TRAIN_PER_CLASS)
    test_images, test_labels = _synthetic_split(rng, SYNTHETIC_TEST_PER_CLASS)
    return Arrays(train_images, train_labels, test_images, test_labels, SYNTHETIC_CLASSES)
