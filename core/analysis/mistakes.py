"""Error analysis of saved predictions: confusion matrix, right and wrong, confused pairs, per-class scores,
galleries.

Pure functions of the arrays in `core.rundir.predictions.Predictions` (true labels, predicted labels, class
probabilities), so the Errors and Gallery pages, the command line and the tests all count the same
way. Every list of images is returned as positions into those arrays; the caller maps a position
to an image through `Predictions.index`. Class indices are ints; names are looked up by the caller.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

# Per-class accuracy is the engine's too (test_summary.json), so the inference path owns it and the check of
# class numbers; compare.py and the pages reach it as mistakes.class_accuracy.
from core.training.inference import checked_class_numbers, class_accuracy

# Pairs that CIFAR-10 models famously mix up; the Errors page offers a button for each when the run's
# classes include both names.
FAMOUS_PAIRS: tuple[tuple[str, str], ...] = (("airplane", "bird"), ("cat", "dog"), ("automobile", "truck"))

OUTCOMES = ("all", "correct", "wrong")
ORDERS = ("confident-mistakes", "least-confident", "random")


# ---------------------------------------------------------------------------------------------
# Confusion matrix
# ---------------------------------------------------------------------------------------------

def confusion_counts(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts: row = true class, column = predicted class (scikit-learn's layout)."""
    labels, pred = checked_class_numbers(labels, pred, num_classes)
    flat = labels * num_classes + pred  # (N,) one cell number per image
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def row_normalise(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its total (the share of a true class that went to each prediction); empty rows stay 0."""
    totals = counts.sum(axis=1, keepdims=True)  # (C, 1)
    return np.divide(counts, totals, out=np.zeros(counts.shape, dtype=np.float64), where=totals > 0)


# ---------------------------------------------------------------------------------------------
# Right and wrong
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tally:
    """How many pictures were judged, and how many of them the model got right."""
    total: int
    right: int

    @property
    def wrong(self) -> int:
        return self.total - self.right

    @property
    def accuracy(self) -> float:
        """The share right; 0 when nothing was judged."""
        return self.right / self.total if self.total else 0.0


def tally(labels: np.ndarray, pred: np.ndarray) -> Tally:
    """Right and wrong over a set of predictions (the Errors page's caption, the report's test results)."""
    labels, pred = np.asarray(labels), np.asarray(pred)
    if labels.shape != pred.shape:
        raise ValueError(f"labels and predictions must be two lists of the same length, got shapes "
                         f"{labels.shape} and {pred.shape}.")
    return Tally(total=int(labels.size), right=int(np.count_nonzero(labels == pred)))


# ---------------------------------------------------------------------------------------------
# Most confused pairs
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ConfusedPair:
    """Two classes mixed up in either direction: `a_as_b` images of class a were predicted b, and back."""
    a: int
    b: int
    a_as_b: int
    b_as_a: int

    @property
    def total(self) -> int:
        return self.a_as_b + self.b_as_a

    @property
    def worse_direction(self) -> tuple[int, int]:
        """The (true, predicted) cell with more mistakes; on a tie, a taken for b."""
        return (self.a, self.b) if self.a_as_b >= self.b_as_a else (self.b, self.a)


def confused_pairs(counts: np.ndarray, limit: int | None = None) -> list[ConfusedPair]:
    """Unordered class pairs ranked by mistakes in both directions (most first), pairs with none left out.

    Ties are broken by the class numbers so the ranking is stable from one refresh to the next.
    """
    c = len(counts)
    pairs = [pair_between(counts, a, b) for a in range(c) for b in range(a + 1, c)]
    ranked = sorted((p for p in pairs if p.total > 0), key=lambda p: (-p.total, p.a, p.b))
    return ranked if limit is None else ranked[:limit]


def pair_between(counts: np.ndarray, a: int, b: int) -> ConfusedPair:
    """The mistakes between classes a and b (a != b) in both directions."""
    if a == b:
        raise ValueError(f"A confused pair needs two different classes, got class {a} twice.")
    return ConfusedPair(a, b, int(counts[a, b]), int(counts[b, a]))


def famous_pairs(classes: list[str] | tuple[str, ...]) -> list[tuple[int, int]]:
    """The FAMOUS_PAIRS whose two class names both exist in `classes`, as class-number pairs."""
    where = {name: k for k, name in enumerate(classes)}
    return [(where[a], where[b]) for a, b in FAMOUS_PAIRS if a in where and b in where]


# ---------------------------------------------------------------------------------------------
# Per-class scores
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClassReport:
    """Per-class scores, one entry per class number; a class with no images (or no predictions) scores 0."""
    precision: np.ndarray  # (C,) of the images predicted as k, the share that really are k
    recall: np.ndarray  # (C,) of the images of class k, the share predicted k
    f1: np.ndarray  # (C,) harmonic mean of precision and recall
    support: np.ndarray  # (C,) images whose true class is k
    accuracy: np.ndarray  # (C,) share of class k's images classified correctly (NaN for a class with no images)


def class_report(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> ClassReport:
    """Precision, recall and F1 from scikit-learn, and per-class accuracy, for every class."""
    labels, pred = checked_class_numbers(labels, pred, num_classes)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, pred, labels=np.arange(num_classes), average=None, zero_division=0)
    return ClassReport(precision, recall, f1, support.astype(np.int64), class_accuracy(labels, pred, num_classes))


# ---------------------------------------------------------------------------------------------
# Picking images: one cell, a gallery query, pages
# ---------------------------------------------------------------------------------------------

def confidence(probs: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(N,) probability the model gave to the class it predicted."""
    return probs[np.arange(len(pred)), pred]


def cell_positions(labels: np.ndarray, pred: np.ndarray, probs: np.ndarray, true_class: int,
                   pred_class: int) -> np.ndarray:
    """Positions of the images of cell (true_class, pred_class), most confident prediction first.

    Its length is exactly the cell's count in `confusion_counts`. Ties keep the saved order.
    """
    positions = np.flatnonzero((labels == true_class) & (pred == pred_class))  # (K,)
    conf = probs[positions, pred_class]
    return positions[np.argsort(-conf, kind="stable")]


def gallery_positions(labels: np.ndarray, pred: np.ndarray, probs: np.ndarray, *,
                      true_class: int | None = None, pred_class: int | None = None,
                      outcome: str = "all", order: str = "confident-mistakes", seed: int = 0) -> np.ndarray:
    """Positions of the images that pass the filters, in the asked order.

    outcome: "all", "correct" or "wrong". order: "confident-mistakes" (wrong predictions first, the
    most confident first, then right ones, the closest calls first), "least-confident" (lowest
    confidence first) or "random" (a shuffle fixed by `seed`).
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}.")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}.")
    keep = np.ones(len(labels), dtype=bool)
    if true_class is not None:
        keep &= labels == true_class
    if pred_class is not None:
        keep &= pred == pred_class
    if outcome != "all":
        keep &= (labels == pred) == (outcome == "correct")
    positions = np.flatnonzero(keep)  # (K,)
    if order == "random":
        return np.random.default_rng(seed).permutation(positions)
    conf = confidence(probs, pred)[positions]
    if order == "least-confident":
        return positions[np.argsort(conf, kind="stable")]
    wrong = labels[positions] != pred[positions]
    # lexsort sorts by the last key first: wrong before right, then by signed confidence.
    return positions[np.lexsort((np.where(wrong, -conf, conf), ~wrong))]


def page_count(n: int, per_page: int) -> int:
    """Pages needed to show n items, at least 1 (an empty page says there is nothing)."""
    if per_page < 1:
        raise ValueError(f"per_page must be at least 1, got {per_page}.")
    return max(1, -(-n // per_page))


def page_of(positions: np.ndarray, page: int, per_page: int) -> np.ndarray:
    """The items of 1-based `page`; a page past the end is clamped to the last one."""
    page = min(max(1, page), page_count(len(positions), per_page))
    return positions[(page - 1) * per_page: page * per_page]


def top_k(probs_row: np.ndarray, k: int = 3) -> list[tuple[int, float]]:
    """The k most probable classes of one image as (class, probability), most probable first."""
    order = np.argsort(-probs_row, kind="stable")[:k]
    return [(int(c), float(probs_row[c])) for c in order]
