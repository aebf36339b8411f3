"""Writing a run's feature map: penultimate-layer features of the test and training pictures, and the test
pictures laid out in 2-D. Training output, like the test predictions:

    predictions/features_test.npz   features (N, D) float16 of the test set, with labels and index
    predictions/features_train.npz  the same for the training split (validation pictures left out)
    predictions/map_test.npz        xy (N, 2) float32: the test features laid out in 2-D, with labels and index

(names from core.rundir.layout). The features are the input of each model's final Linear layer, caught
through the one inference path (core.training.inference.infer_features). The layout is PCA to 50
dimensions, then t-SNE (init="pca", a fixed random_state), so the same features always give the same map.

The engine writes these files at the end of training (`write_features`); runs made before that are given
them on demand (`compute_run_features`, a background job of core.jobs), never without asking. Reading them
back, checked, is the analysis wing's (core.analysis.features).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.data import ImageSet, Normalizer, load_dataset
from core.rundir import catalog, layout
from core.rundir.config import TrainConfig
from core.rundir.predictions import save_npz
from core.training.inference import Predictor, evaluated_checkpoint, images_to_tensor, infer_features
from core.training.session import held_out_split

CHUNK = 2000  # pictures per inference call: the stop flag and the progress are looked at between chunks
PCA_DIMS = 50
LAYOUT_SEED = 0
# Shares of the whole job, for the progress bar: the test features, the training features, then the layout.
STAGES = {"test": (0.0, 0.15), "train": (0.15, 0.65), "layout": (0.65, 1.0)}

Progress = Callable[[float, str], None]  # (fraction done 0..1, what is happening, in plain words)


class FeaturesStopped(Exception):
    """The stop flag was set while features were being computed; nothing half-done was written."""


def _no_progress(fraction: float, message: str) -> None:
    pass


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
    save_npz(layout.features(run_dir, "test"), features=test, labels=test_set.labels, index=test_set.index)
    save_npz(layout.features(run_dir, "train"), features=train, labels=train_set.labels, index=train_set.index)
    save_npz(layout.feature_map(run_dir), xy=xy, labels=test_set.labels, index=test_set.index)
    progress(1.0, "Done")


def compute_run_features(run_dir: Path, device: torch.device, progress: Progress | None = None,
                         stop: threading.Event | None = None) -> None:
    """Give an existing run its feature map from its own checkpoint and data (RunError with a sentence if it cannot)."""
    run_dir = Path(run_dir)
    checkpoint = evaluated_checkpoint(run_dir)
    if checkpoint is None:
        raise catalog.RunError("This run has no saved model yet, so it has no features to map.")
    summary = catalog.summarize_run(run_dir)
    if not summary.config:  # config.json missing or damaged: nothing says what the run learned from
        raise catalog.RunError(summary.error or "The run's settings do not say which data it was trained on.")
    cfg = TrainConfig.from_dict(summary.config)
    try:
        data = load_dataset(cfg.data, cfg.data_dir or None)
    except (ValueError, OSError) as exc:  # the same sentence as the pages' (core.analysis.pictures.run_dataset)
        raise catalog.RunError(f"The images of '{cfg.data}' cannot be loaded on this machine: {exc}") from None
    train_set, _ = held_out_split(cfg, data.train)  # the pictures it learned from, as the engine split them
    predictor = Predictor.from_run(run_dir, device, checkpoint)
    write_features(run_dir, predictor.model, predictor.normalize, data.test, train_set, device,
                   amp_dtype=predictor.amp, memory_format=predictor.memory_format, progress=progress, stop=stop)
