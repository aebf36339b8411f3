"""A labelled set class by class: how many pictures each class has in each split, and a random few of each
(the Data page's bar chart and picture grid)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def class_counts(classes: Sequence[str], splits: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Images per class in each split: one row a class, one column a split (e.g. train, validation, test)."""
    table = pd.DataFrame({"class": list(classes)})
    for split, labels in splits.items():
        table[split] = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))[: len(classes)]
    return table


def sample_per_class(labels: np.ndarray, per_class: int, seed: int) -> dict[int, np.ndarray]:
    """Up to `per_class` random positions of each class present in `labels` (same seed, same pick)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    picks = {}
    for cls in np.unique(labels):
        where = np.flatnonzero(labels == cls)
        picks[int(cls)] = np.sort(rng.choice(where, size=min(per_class, len(where)), replace=False))
    return picks
