"""Suspected label errors by confident learning (Northcutt, Jiang and Chuang, JAIR 2021), in numpy.

Given each picture's given label and the model's class probabilities for it (out-of-sample: the test
set, or out-of-fold training predictions), a picture is suspect when the model finds its given label
unusually unlikely *and* is unusually sure of another class:

- per-class thresholds t_j: the mean self-confidence p_j(x) over the pictures given class j (how sure the
  model usually is of class j when j is the given label);
- the confident joint C[i, j]: pictures given label i whose most likely class among those reaching their
  own threshold (p_j(x) >= t_j) is j; pictures reaching no threshold are not counted;
- suspects: pictures whose given-label probability is below that label's threshold while another class
  reaches its own; the suggested label is the confident-joint column they fall in;
- ranked by self-confidence (the given label's probability, lowest first) or by normalized margin
  ((p_given - max other p + 1) / 2, lowest first).

Written here rather than taken from cleanlab, whose AGPL licence must not become a dependency.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RANKINGS = ("self_confidence", "normalized_margin")
RANKING_NAMES = {"self_confidence": "Self-confidence", "normalized_margin": "Normalized margin"}


@dataclass(frozen=True)
class LabelIssues:
    """Suspect pictures, most suspicious first, with what is needed to show and explain them."""
    positions: np.ndarray  # (K,) rows of the probabilities, most suspicious first
    given: np.ndarray  # (K,) the label each picture was given
    suggested: np.ndarray  # (K,) the class the model is confident of instead
    scores: np.ndarray  # (K,) the ranking score, 0 to 1: low = more likely mislabelled
    suggested_prob: np.ndarray  # (K,) the model's probability of the suggested class ("how sure")
    thresholds: np.ndarray  # (C,) per-class mean self-confidence; NaN for a class no picture was given
    confident_joint: np.ndarray  # (C, C) int64 counts: row = given label, column = confident class
    ranking: str  # one of RANKINGS


def _checked(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 probabilities and int64 labels, or ValueError saying what is wrong with them."""
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    if probs.ndim != 2 or probs.shape[1] < 2 or not np.issubdtype(probs.dtype, np.floating):
        raise ValueError(f"Class probabilities must be a table of decimal numbers with a row a picture and a "
                         f"column a class (at least 2), got {probs.dtype} of shape {probs.shape}.")
    if not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1.001:
        raise ValueError("Class probabilities must be numbers from 0 to 1; these include others.")
    if labels.shape != (len(probs),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"Labels must be {len(probs)} whole numbers, one a picture; got {labels.dtype} of "
                         f"shape {labels.shape}.")
    if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"Labels must be class numbers from 0 to {probs.shape[1] - 1}; these run from "
                         f"{labels.min()} to {labels.max()}.")
    return probs.astype(np.float64), labels.astype(np.int64)


def per_class_thresholds(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(C,) mean probability of class j over the pictures given label j; NaN where no picture has label j."""
    probs, labels = _checked(probs, labels)
    num_classes = probs.shape[1]
    self_conf = probs[np.arange(len(labels)), labels]  # (N,)
    sums = np.bincount(labels, weights=self_conf, minlength=num_classes)
    counts = np.bincount(labels, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _confident_classes(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(N,) the most likely class among those at or above their threshold; -1 where none is."""
    # A class no picture was given has no threshold: it is never a confident class (NaN compares False).
    above = probs >= thresholds[None, :]  # (N, C)
    masked = np.where(above, probs, -1.0)
    confident = masked.argmax(axis=1)
    return np.where(above.any(axis=1), confident, -1)


def confident_joint(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
    """(C, C) counts: row = given label, column = the class the model is confidently sure of."""
    probs, labels = _checked(probs, labels)
    if thresholds is None:
        thresholds = per_class_thresholds(probs, labels)
    num_classes = probs.shape[1]
    confident = _confident_classes(probs, thresholds)
    counted = confident >= 0
    joint = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(joint, (labels[counted], confident[counted]), 1)
    return joint


def ranking_scores(probs: np.ndarray, labels: np.ndarray, ranking: str = "self_confidence") -> np.ndarray:
    """(N,) label-quality score in 0..1 for every picture: low means its given label looks wrong."""
    if ranking not in RANKINGS:
        raise ValueError(f"Unknown ranking {ranking!r}; choose one of: {', '.join(RANKINGS)}.")
    probs, labels = _checked(probs, labels)
    rows = np.arange(len(labels))
    self_conf = probs[rows, labels]
    if ranking == "self_confidence":
        return self_conf
    others = probs.copy()
    others[rows, labels] = -np.inf
    return (self_conf - others.max(axis=1) + 1) / 2


def find_label_issues(probs: np.ndarray, labels: np.ndarray, ranking: str = "self_confidence") -> LabelIssues:
    """The pictures whose given label is below its class threshold while another class reaches its own.

    Ties in the score keep the pictures' order, so the list is the same on every call.
    """
    probs, labels = _checked(probs, labels)
    scores = ranking_scores(probs, labels, ranking)
    thresholds = per_class_thresholds(probs, labels)
    confident = _confident_classes(probs, thresholds)
    self_conf = probs[np.arange(len(labels)), labels]
    suspect = np.flatnonzero((self_conf < thresholds[labels]) & (confident >= 0))
    order = suspect[np.argsort(scores[suspect], kind="stable")]
    suggested = confident[order]
    return LabelIssues(
        positions=order, given=labels[order], suggested=suggested, scores=scores[order],
        suggested_prob=probs[order, suggested], thresholds=thresholds,
        confident_joint=confident_joint(probs, labels, thresholds), ranking=ranking)


def filter_given(issues: LabelIssues, given_class: int | None) -> np.ndarray:
    """Indices into `issues` (its rank order kept) of the suspects given `given_class`; all when None."""
    if given_class is None:
        return np.arange(len(issues.positions))
    return np.flatnonzero(issues.given == given_class)
