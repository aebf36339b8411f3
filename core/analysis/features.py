"""The feature map of a run: penultimate-layer features, a 2-D layout of the test set, and look-alikes.

    predictions/features_test.npz   features (N, D) float16 of the test set, with labels and index
    predictions/features_train.npz  the same for the training split (validation pictures left out)
    predictions/map_test.npz        xy (N, 2) float32: the test features laid out in 2-D, with labels and index

The features are the input of each model's final Linear layer, caught through the one inference path
(core.training.inference.infer_features). The layout is PCA to 50 dimensions, then t-SNE (init="pca", a fixed
random_state), so the same features always give the same map. `nearest` answers "which training
pictures does this test picture sit among" by cosine similarity, computed with torch on the device.

The engine writes these files at the end of training (`write_features`); runs made before that are
given them on demand (`compute_run_features`, a background job of core.jobs), never without asking.

Reading checks every array in the dtype it was saved in (`load_features`, `load_map`: a table of finite
decimal numbers, whole-number labels and index from 0, one a row) and raises PredictionsError with one
sentence naming the file otherwise; `fits_test_results` and `lookalike_problem` check the files against
the test results, the run's classes and the training pictures on this machine.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.rundir import catalog, records
from core.rundir.checkpoints import checkpoint_path
from core.rundir.config import TrainConfig
from core.data import ImageSet, Normalizer, split_train_val
from core.rundir.predictions import Predictions, checked_ints, dtype_words, read_npz, save_npz
from core.training.inference import Predictor, images_to_tensor, infer_features
from core.analysis.pictures import run_dataset
from core.rundir.records import PredictionsError

log = logging.getLogger(__name__)

FEATURES_TEST = "features_test.npz"
FEATURES_TRAIN = "features_train.npz"
MAP_TEST = "map_test.npz"
CHUNK = 2000  # pictures per inference call: the stop flag and the progress are looked at between chunks
PCA_DIMS = 50
LAYOUT_SEED = 0
NEIGHBOURS = 8
# Shares of the whole job, for the progress bar: the test features, the training features, then the layout.
STAGES = {"test": (0.0, 0.15), "train": (0.15, 0.65), "layout": (0.65, 1.0)}

Progress = Callable[[float, str], None]  # (fraction done 0..1, what is happening, in plain words)


class FeaturesStopped(Exception):
    """The stop flag was set while features were being computed; nothing half-done was written."""


def _no_progress(fraction: float, message: str) -> None:
    pass


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------

def feature_path(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / "predictions" / name


def has_map(run_dir: Path) -> bool:
    """Whether the run has all three feature-map files (runs made before them have none)."""
    return all(feature_path(run_dir, name).is_file() for name in (FEATURES_TEST, FEATURES_TRAIN, MAP_TEST))


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
    values = checked_table(path.name, key, arrays[key], 2 if key == "xy" else None)
    labels, index = (checked_ints(path.name, k, arrays[k], len(values)) for k in ("labels", "index"))
    return FeatureSet(values, labels, index)


def checked_table(name: str, key: str, values: np.ndarray, columns: int | None = None) -> np.ndarray:
    """(N, D) float32 of finite decimal numbers, N >= 1, D == `columns` (or >= 1 when None)."""
    where = f"predictions/{name}"
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


def load_features(run_dir: Path, split: str) -> FeatureSet | None:
    """The saved features of "test" or "train" (float32 in memory), None when the run has none."""
    return _load(feature_path(run_dir, FEATURES_TEST if split == "test" else FEATURES_TRAIN), "features")


def load_map(run_dir: Path) -> FeatureSet | None:
    """The saved 2-D layout of the test set (values: xy), None when the run has none."""
    return _load(feature_path(run_dir, MAP_TEST), "xy")


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
    where = f"predictions/{FEATURES_TRAIN}"
    if train.values.shape[1] != test.values.shape[1]:
        return (f"{where} does not fit predictions/{FEATURES_TEST}: it holds {train.values.shape[1]} features a "
                f"picture, the test pictures {test.values.shape[1]}; compute the map again to replace them.")
    if train.labels.max() >= num_classes:
        return (f"{where} is damaged: its 'labels' go up to class {train.labels.max()}, but the run has "
                f"{num_classes} classes (0 to {num_classes - 1}).")
    if train_pictures is not None and train.index.max() >= train_pictures:
        return (f"{where} does not fit the training pictures on this machine: it points to picture "
                f"{train.index.max()}, but there are {train_pictures} (the data changed since).")
    return None


# ---------------------------------------------------------------------------------------------
# Computing
# ---------------------------------------------------------------------------------------------

def split_features(model: nn.Module, images: np.ndarray, normalize: Normalizer, device: torch.device, *,
                   amp_dtype: torch.dtype | None = None, memory_format: torch.memory_format = torch.contiguous_format,
                   report: Callable[[float], None] = lambda done: None,
                   stop: threading.Event | None = None) -> np.ndarray:
    """Features (N, D) float16 of uint8 images (N, H, W, 3), a chunk at a time; FeaturesStopped on a stop."""
    chunks = []
    for start in range(0, len(images), CHUNK):
        if stop is not None and stop.is_set():
            raise FeaturesStopped
        x = images_to_tensor(images[start:start + CHUNK], device)  # (B, 3, H, W) uint8
        _, feats = infer_features(model, x, normalize, amp_dtype=amp_dtype, memory_format=memory_format)
        chunks.append(feats.cpu().numpy().astype(np.float16))  # (B, D)
        report(min(start + CHUNK, len(images)) / max(len(images), 1))
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float16)


def layout_2d(features: np.ndarray, seed: int = LAYOUT_SEED) -> np.ndarray:
    """(N, 2) float32 map positions: PCA to at most 50 dimensions, then t-SNE; the same input, the same map."""
    from sklearn.decomposition import PCA  # lazy: sklearn's import is slow
    from sklearn.manifold import TSNE

    x = np.asarray(features, dtype=np.float32)
    n = len(x)
    if n < 5 or x.shape[1] < 2:  # t-SNE needs a few neighbours; so few pictures are simply spread on a line
        return np.stack([np.arange(n, dtype=np.float32), np.zeros(n, np.float32)], axis=1)
    x = PCA(n_components=min(PCA_DIMS, n, x.shape[1]), random_state=seed).fit_transform(x)
    tsne = TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30.0, (n - 1) / 3))
    return tsne.fit_transform(x).astype(np.float32)


def nearest(query: np.ndarray, bank: np.ndarray, k: int = NEIGHBOURS,
            device: torch.device | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of `bank` (M, D) most cosine-similar to `query` (D,), most similar first: (rows, similarities)."""
    device = device or torch.device("cpu")
    q = torch.as_tensor(np.asarray(query, np.float32), device=device).reshape(1, -1)  # (1, D)
    b = torch.as_tensor(np.asarray(bank, np.float32), device=device)  # (M, D)
    sims = torch.nn.functional.cosine_similarity(b, q, dim=1)  # (M,)
    top = torch.topk(sims, min(k, len(b)))
    return top.indices.cpu().numpy(), top.values.cpu().numpy()


def _stage(progress: Progress, stage: str, message: str) -> Callable[[float], None]:
    lo, hi = STAGES[stage]
    return lambda done: progress(lo + (hi - lo) * done, message)


def write_features(run_dir: Path, model: nn.Module, normalize: Normalizer, test_set: ImageSet, train_set: ImageSet,
                   device: torch.device, *, amp_dtype: torch.dtype | None = None,
                   memory_format: torch.memory_format = torch.contiguous_format,
                   progress: Progress | None = None, stop: threading.Event | None = None) -> None:
    """Compute and save both splits' features and the test map; each file is written whole or not at all."""
    progress = progress or _no_progress
    kwargs = dict(amp_dtype=amp_dtype, memory_format=memory_format, stop=stop)
    test = split_features(model, test_set.images, normalize, device,
                          report=_stage(progress, "test", "Features of the test pictures"), **kwargs)
    train = split_features(model, train_set.images, normalize, device,
                           report=_stage(progress, "train", "Features of the training pictures"), **kwargs)
    progress(STAGES["layout"][0], "Laying out the map (t-SNE)")
    if stop is not None and stop.is_set():
        raise FeaturesStopped
    xy = layout_2d(test)
    # The map last: the page shows it only when it exists, and then the features it needs exist too.
    save_npz(feature_path(run_dir, FEATURES_TEST), features=test, labels=test_set.labels, index=test_set.index)
    save_npz(feature_path(run_dir, FEATURES_TRAIN), features=train, labels=train_set.labels, index=train_set.index)
    save_npz(feature_path(run_dir, MAP_TEST), xy=xy, labels=test_set.labels, index=test_set.index)
    progress(1.0, "Done")


def evaluated_checkpoint(run_dir: Path) -> str | None:
    """The checkpoint the saved test predictions came from: best after early stopping, else last."""
    test_summary = records.read_json(Path(run_dir) / "test_summary.json") or {}
    order = ("best", "last") if test_summary.get("early_stopped") else ("last", "best")
    return next((w for w in order if checkpoint_path(Path(run_dir), w).is_file()), None)


def compute_run_features(run_dir: Path, device: torch.device, progress: Progress | None = None,
                         stop: threading.Event | None = None) -> None:
    """Give an existing run its feature map from its own checkpoint and data (RunError with a sentence if it cannot)."""
    run_dir = Path(run_dir)
    which = evaluated_checkpoint(run_dir)
    if which is None:
        raise catalog.RunError("This run has no saved model yet, so it has no features to map.")
    summary = catalog.summarize_run(run_dir)
    data, reason = run_dataset(summary.config)
    if data is None:
        raise catalog.RunError(reason)
    cfg = TrainConfig.from_dict(summary.config)
    train_set, _ = split_train_val(data.train, cfg.val_fraction, cfg.split_seed)  # the pictures it learned from
    predictor = Predictor.from_run(run_dir, device, which)
    write_features(run_dir, predictor.model, predictor.normalize, data.test, train_set, device,
                   amp_dtype=predictor.amp, memory_format=predictor.memory_format, progress=progress, stop=stop)


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
