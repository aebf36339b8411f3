"""What a data source gives: a Dataset of two ImageSets (uint8 arrays), and DataError when it cannot."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from core.rundir.config import KEYWORD_SOURCES

LAYOUT_HINT = "ImageFolder layout (train/<class>/*, test/<class>/*)"
SOURCES_HINT = f"{', '.join(map(repr, KEYWORD_SOURCES))}, or a folder or .tar.gz/.tgz/.zip archive in {LAYOUT_HINT}"


class DataError(ValueError):
    """A data source that cannot be used; the message says what was wrong and what is allowed."""


@dataclass(frozen=True, eq=False)
class ImageSet:
    """One split: images with their labels and their position in the source split."""

    images: np.ndarray  # (N, 32, 32, 3) uint8 RGB
    labels: np.ndarray  # (N,) int64 class index
    index: np.ndarray  # (N,) int64 position in the source split (a val image's index is its train index)

    def __post_init__(self) -> None:
        if not len(self.images) == len(self.labels) == len(self.index):
            raise ValueError(
                f"ImageSet needs as many labels and indices as images; got {len(self.images)} images, "
                f"{len(self.labels)} labels and {len(self.index)} indices."
            )

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, positions: np.ndarray) -> ImageSet:
        """The subset at `positions` (positions in this set, not source indices)."""
        return ImageSet(self.images[positions], self.labels[positions], self.index[positions])


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded source: train and test splits plus what identifies them."""

    train: ImageSet
    test: ImageSet
    classes: tuple[str, ...]
    source: str  # as given by the user
    fingerprint: str  # short hex key of the source's content/identity (names the cache folder)


class Arrays(NamedTuple):
    """Decoded arrays of a source, the unit that is cached."""

    train_images: np.ndarray  # (N, 32, 32, 3) uint8
    train_labels: np.ndarray  # (N,) int64
    test_images: np.ndarray  # (M, 32, 32, 3) uint8
    test_labels: np.ndarray  # (M,) int64
    classes: tuple[str, ...]


def image_set(images: np.ndarray, labels: np.ndarray) -> ImageSet:
    return ImageSet(images, labels.astype(np.int64, copy=False), np.arange(len(labels), dtype=np.int64))
