"""A labelled set class by class (core.data.per_class): counts per split and a random few of each."""
import numpy as np

from core.data import per_class


def test_class_counts_and_sampling():
    labels = np.array([0, 1, 1, 2, 2, 2])
    table = per_class.class_counts(["a", "b", "c", "d"], {"train": labels, "test": np.array([3])})
    assert list(table["train"]) == [1, 2, 3, 0] and list(table["test"]) == [0, 0, 0, 1]
    picks = per_class.sample_per_class(labels, per_class=2, seed=0)
    assert set(picks) == {0, 1, 2} and len(picks[0]) == 1 and len(picks[2]) == 2
    assert all((labels[p] == c).all() for c, p in picks.items())
    again = per_class.sample_per_class(labels, 2, 0)
    assert {c: list(p) for c, p in again.items()} == {c: list(p) for c, p in picks.items()}
