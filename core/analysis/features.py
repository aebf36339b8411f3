"""Reading a run's feature map, checked: the saved features, the 2-D layout of the test set, and look-alikes.

    predictions/features_test.npz   features (N, D) float16 of the test set, with labels and index
    predictions/features_train.npz  the same for the training split (validation pictures left out)
    predictions/map_test.npz        xy (N, 2) float32: the test features laid out in 2-D, with labels and index

The training wing writes these files (core.training.feature_map: at the end of training, or later as a job);
their names are core.rundir.layout's. `nearest` answers "which training pictures does this test picture sit
among" by cosine similarity, computed with torch on the device.

Reading checks every array in the dtype it was saved in (`load_features`, `load_map`: a table of finite
decimal numbers, whole-number labels and index from 0, one a row) and raises PredictionsError with one
sentence naming the file otherwise; `fits_test_results` and `lookalike_problem` check the files against
the test results, the run's classes and the training pictures on this machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.rundir import layout
from core.rundir.layout import FeatureSplit
from core.rundir.predictions import Predictions, checked_ints, dtype_words, read_npz
from core.rundir.records import PredictionsError

NEIGHBOURS = 8


def _shown(path: Path) -> str:
    """How sentences name a map file: predictions/features_train.npz."""
    return f"{path.parent.name}/{path.name}"


def has_map(run_dir: Path) -> bool:
    """Whether the run has all three feature-map files (runs made before them have none)."""
    paths = (layout.features(run_dir, "test"), layout.features(run_dir, "train"), layout.feature_map(run_dir))
    return all(path.is_file() for path in paths)


@dataclass(frozen=True)
class FeatureSet:
    """One split's saved features, or the test map's layout (`values` is then xy)."""
    values: np.ndarray  # (N, D) float32 features, or (N, 2) float32 map positions
    labels: np.ndarray  # (N,) true class
    index: np.ndarray  # (N,) position of each picture in its source split


def _load(path: Path, key: str) -> FeatureSet | None:
    """A saved FeatureSet, None when not written yet; PredictionsError with one sentence when damaged.

    Every array is checked in the dtype it was saved in (core.rundir.predictions' checks): `key` a table of finite
    decimal numbers, a row a picture (xy: exactly 2 columns), labels and index whole numbers from 0, one a row.
    """
    arrays = read_npz(path, (key, "labels", "index"), what="a saved feature map")
    if arrays is None:
        return None
    values = checked_table(path, key, arrays[key], 2 if key == "xy" else None)
    labels, index = (checked_ints(path.name, k, arrays[k], len(values)) for k in ("labels", "index"))
    return FeatureSet(values, labels, index)


def checked_table(path: Path, key: str, values: np.ndarray, columns: int | None = None) -> np.ndarray:
    """(N, D) float32 of finite decimal numbers, N >= 1, D == `columns` (or >= 1 when None)."""
    where = _shown(path)
    if not np.issubdtype(values.dtype, np.floating):
        raise PredictionsError(f"{where} is damaged: its {key!r} are {dtype_words(values.dtype)}, not decimal "
                               "numbers.")
    wanted = f"{columns} columns" if columns else "at least one column"
    if values.ndim != 2 or len(values) == 0 or values.shape[1] < 1 or (columns and values.shape[1] != columns):
        raise PredictionsError(f"{where} is damaged: its {key!r} should be a table with a row a picture (at "
                               f"least one) and {wanted}, but their shape is {values.shape}.")
    with np.errstate(over="ignore"):
        values = values.astype(np.float32)  # checked after the cast: a float64 beyond float32 turns infinite
    if not np.isfinite(values).all():
        raise PredictionsError(f"{where} is damaged: its {key!r} include numbers that are not finite (NaN, "
                               "infinite or too large).")
    return values


def load_features(run_dir: Path, split: FeatureSplit) -> FeatureSet | None:
    """The saved features of "test" or "train" (float32 in memory), None when the run has none."""
    return _load(layout.features(run_dir, split), "features")


def load_map(run_dir: Path) -> FeatureSet | None:
    """The saved 2-D layout of the test set (values: xy), None when the run has none."""
    return _load(layout.feature_map(run_dir), "xy")


def fits_test_results(found: FeatureSet, preds: Predictions) -> bool:
    """Whether the map or the test features were made for these saved test results: the same pictures, in
    the same order, with the same labels (a map of an earlier evaluation is not)."""
    return np.array_equal(found.index, preds.index) and np.array_equal(found.labels, preds.labels)


def lookalike_problem(test: FeatureSet, train: FeatureSet, num_classes: int,
                      train_pictures: int | None = None) -> str | None:
    """Why the training features cannot give these test features their look-alikes (one sentence), or None.

    `num_classes`: the run's class count (its labels must name one of them); `train_pictures`: how many
    training pictures are on this machine (its index must point among them), None when they are not here.
    """
    where, test_file = (_shown(layout.features(Path(), split)) for split in ("train", "test"))
    if train.values.shape[1] != test.values.shape[1]:
        return (f"{where} does not fit {test_file}: it holds {train.values.shape[1]} features a "
                f"picture, the test pictures {test.values.shape[1]}; compute the map again to replace them.")
    if train.labels.max() >= num_classes:
        return (f"{where} is damaged: its 'labels' go up to class {train.labels.max()}, but the run has "
                f"{num_classes} classes (0 to {num_classes - 1}).")
    if train_pictures is not None and train.index.max() >= train_pictures:
        return (f"{where} does not fit the training pictures on this machine: it points to picture "
                f"{train.index.max()}, but there are {train_pictures} (the data changed since).")
    return None


def nearest(query: np.ndarray, bank: np.ndarray, k: int = NEIGHBOURS,
            device: torch.device | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of `bank` (M, D) most cosine-similar to `query` (D,), most similar first: (rows, similarities)."""
    device = device or torch.device("cpu")
    q = torch.as_tensor(np.asarray(query, np.float32), device=device).reshape(1, -1)  # (1, D)
    b = torch.as_tensor(np.asarray(bank, np.float32), device=device)  # (M, D)
    sims = torch.nn.functional.cosine_similarity(b, q, dim=1)  # (M,)
    top = torch.topk(sims, min(k, len(b)))
    return top.indices.cpu().numpy(), top.values.cpu().numpy()


# ---------------------------------------------------------------------------------------------
# Reading the map: a box's pictures, the look-alikes in words
# ---------------------------------------------------------------------------------------------

def inside_box(xy: np.ndarray, x_range: tuple[float, float], y_range: tuple[float, float]) -> np.ndarray:
    """Positions of the points of `xy` (N, 2) inside the box, edges included, in order."""
    (x_lo, x_hi), (y_lo, y_hi) = sorted(x_range), sorted(y_range)
    x, y = xy[:, 0], xy[:, 1]
    return np.flatnonzero((x >= x_lo) & (x <= x_hi) & (y >= y_lo) & (y <= y_hi))


_SAME_PLURAL = {"deer", "sheep", "fish", "aircraft"}


def plural(name: str) -> str:
    """An English plural good enough for class names: cats, buses, deer."""
    if name.lower() in _SAME_PLURAL:
        return name
    if name.lower().endswith(("s", "x", "z", "ch", "sh")):
        return name + "es"
    return name + "s"


def lookalike_sentence(true_name: str, neighbour_names: list[str]) -> str:
    """'Your cat sits among these dogs: 6 of its 8 nearest training pictures are dogs.' (or among its own kind)."""
    if not neighbour_names:
        return "There are no training pictures to compare it with."
    names, counts = np.unique(np.asarray(neighbour_names, dtype=object), return_counts=True)
    most, n, k = str(names[counts.argmax()]), int(counts.max()), len(neighbour_names)
    if most == true_name:
        return (f"This {true_name} sits among its own kind: {n} of its {k} nearest training pictures are "
                f"{plural(true_name)}.")
    return f"Your {true_name} sits among these {plural(most)}: {n} of its {k} nearest training pictures are {plural(most)}."
