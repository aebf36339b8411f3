"""The validation split (stratified) and the normalisation statistics of the training split."""
from __future__ import annotations

import math

import numpy as np

from core.data.sets import DataError, ImageSet

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 luminance weights for the grayscale option
# One grey level: uint8 pixels cannot spread less, so a smaller std means a constant channel. Its
# normalised value is 0 on every training picture whatever the floor; one level keeps ordinary data untouched.
MIN_STD = 1 / 255


def split_train_val(train: ImageSet, val_fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Stratified (train, val) split of the training set; `index` keeps each image's train position."""
    if not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction <= 0.5:
        raise ValueError(f"val_fraction={val_fraction!r} is invalid; use a number from 0 to 0.5.")
    if val_fraction == 0 or len(train) == 0:
        return train, train.take(np.arange(0))
    _check_splittable(train.labels, val_fraction)
    from sklearn.model_selection import train_test_split  # lazy: sklearn import is slow

    keep, val = train_test_split(
        np.arange(len(train)), test_size=val_fraction, random_state=seed, stratify=train.labels
    )
    # Sorted positions keep both subsets in source order; the loader shuffles anyway.
    return train.take(np.sort(keep)), train.take(np.sort(val))


def split_fold(train: ImageSet, folds: int, fold: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """(train without fold `fold`, fold `fold`) of a stratified `folds`-way split; `index` keeps train positions.

    The same (folds, seed) always gives the same folds, so K runs with fold 0..K-1 hold out every
    training picture exactly once.
    """
    if not 2 <= folds <= len(train) or not 0 <= fold < folds:
        raise ValueError(f"fold={fold!r} of folds={folds!r} is invalid; use 2 or more folds and a fold from 0 "
                         "to folds - 1.")
    counts = np.bincount(train.labels)
    if counts[counts > 0].min() < folds:
        raise DataError(f"The training set's smallest class has {counts[counts > 0].min()} pictures, too few to "
                        f"split into {folds} folds that each hold every class; use fewer folds (at most "
                        f"{counts[counts > 0].min()}).")
    from sklearn.model_selection import StratifiedKFold  # lazy: sklearn import is slow

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    keep, held = list(splitter.split(np.zeros(len(train)), train.labels))[fold]
    return train.take(np.sort(keep)), train.take(np.sort(held))


def _check_splittable(labels: np.ndarray, val_fraction: float) -> None:
    """DataError unless a stratified split of `labels` exists: sklearn's own conditions, in one user sentence.

    train_test_split(stratify=...) needs every class twice and as many pictures as classes on each
    side, with ceil(val_fraction * n) pictures held back; its messages are several sentences about "y".
    """
    counts = np.bincount(labels)
    counts = counts[counts > 0]  # (classes present,)
    n, n_classes = len(labels), len(counts)
    n_val = math.ceil(val_fraction * n)
    if counts.min() >= 2 and min(n_val, n - n_val) >= n_classes:
        return
    raise DataError(
        f"The training set ({n} pictures in {n_classes} classes, the smallest with {counts.min()}) is too small "
        f"to hold back a stratified {val_fraction:.0%} validation set, which needs at least 2 pictures of every "
        f"class and a picture of every class on each side; add more pictures per class, or set the validation "
        f"share (val_fraction) to 0."
    )


def channel_stats(
    images: np.ndarray, *, grayscale: bool = False
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std in [0, 1] units of (N, H, W, 3) uint8 images (of luminance when grayscale).

    A std is never below MIN_STD, so a constant channel (a dataset with no blue, or all-grey pictures)
    still normalises, to 0, instead of dividing by zero.
    """
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(images) == 0:
        raise ValueError(
            f"channel_stats needs a non-empty (N, H, W, 3) uint8 array; got shape {images.shape} {images.dtype}."
        )
    if grayscale:
        total = total_sq = 0.0
        for start in range(0, len(images), 4096):  # chunks keep the float copy small
            lum = images[start:start + 4096].astype(np.float64) @ np.array(LUMA) / 255  # (n, H, W)
            total, total_sq = total + lum.sum(), total_sq + np.square(lum).sum()
        count = images[..., 0].size
        mean = float(total / count)
        std = max(float(np.sqrt(max(total_sq / count - mean**2, 0.0))), MIN_STD)
        return (mean,) * 3, (std,) * 3
    means, stds = [], []
    values = np.arange(256, dtype=np.float64) / 255
    for c in range(3):
        counts = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)  # exact histogram
        mean = counts @ values / counts.sum()
        means.append(float(mean))
        stds.append(max(float(np.sqrt(max(counts @ values**2 / counts.sum() - mean**2, 0.0))), MIN_STD))
    return tuple(means), tuple(stds)  # type: ignore[return-value]
