"""Run against run: two runs' final test predictions side by side, picture by picture.

The Compare page draws from these pure functions of two `core.rundir.predictions.Predictions` (test split):

    test_set_refusal(a, b)   one sentence when the two were not tested on the same pictures, else None
    align(a, b)              both runs' answers in one order: by `index`, the picture's place in the test set
    difference_counts(x)     B's confusion counts minus A's
    accuracies(x), class_accuracies(x), outcome_counts(x)   overall and per-class accuracy of A and B
    flip_counts(x), flips(x, t, p)   the pictures that *flipped*: right in one run, wrong in the other

A square's flips, for true class t and predicted class p:
    off the diagonal (t != p): pictures of class t that one run put in p and the other got right;
        "right in A, wrong in B" = A said t and B said p; "wrong in A, right in B" = A said p and B said t.
    on the diagonal (t == p), which is also "the class t": pictures of class t right in one run and
        wrong in the other, whatever the wrong answer was.
So a diagonal square's difference is exactly (wrong in A, right in B) - (right in A, wrong in B); an
off-diagonal square's difference also counts pictures both runs got wrong, moving between wrong answers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.analysis import mistakes
from core.rundir.predictions import Predictions

_PICK_ANOTHER = "pick a run B that was tested on the same pictures as run A"


# ---------------------------------------------------------------------------------------------
# Same test set, or a sentence saying why not
# ---------------------------------------------------------------------------------------------

def test_set_refusal(a: Predictions, b: Predictions) -> str | None:
    """One sentence when runs A and B were not tested on the same pictures, else None.

    Checked in order: the number of pictures, each picture listed once, which pictures (by `index`,
    the place in the test set), the class count, and the true class of every picture.
    """
    n_a, n_b = len(a.labels), len(b.labels)
    if n_a != n_b:
        return (f"Run A was tested on {n_a:,} pictures and run B on {n_b:,}, so they cannot be compared: "
                f"{_PICK_ANOTHER}.")
    for run, preds in (("A", a), ("B", b)):
        values, counts = np.unique(preds.index, return_counts=True)
        if (counts > 1).any():
            return (f"Run {run}'s test results list picture {values[counts > 1][0]} more than once, so they "
                    f"cannot be matched picture by picture: {_PICK_ANOTHER}.")
    missing = np.setdiff1d(a.index, b.index).size
    if missing:
        return (f"Runs A and B were tested on different pictures ({missing:,} of run A's {n_a:,} are not in run "
                f"B's test set), so they cannot be compared: {_PICK_ANOTHER}.")
    c_a, c_b = a.probs.shape[1], b.probs.shape[1]
    if c_a != c_b:
        return (f"Run A tells {c_a} classes apart and run B {c_b}, so they cannot be compared: pick a run B "
                "trained on the same classes as run A.")
    differ = int((a.labels[np.argsort(a.index)] != b.labels[np.argsort(b.index)]).sum())
    if differ:
        return (f"Runs A and B give different true classes to {differ:,} of their {n_a:,} pictures, so they "
                f"were tested on different data and cannot be compared: {_PICK_ANOTHER}.")
    return None


# ---------------------------------------------------------------------------------------------
# Both runs' answers in one order
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Aligned:
    """Two runs' test answers for the same pictures, in the order of the pictures' place in the test set."""
    index: np.ndarray  # (N,) place of each picture in the test set, ascending
    labels: np.ndarray  # (N,) true class
    pred_a: np.ndarray  # (N,) run A's answer
    pred_b: np.ndarray  # (N,) run B's answer
    conf_a: np.ndarray  # (N,) probability run A gave its own answer
    conf_b: np.ndarray  # (N,) probability run B gave its own answer
    num_classes: int

    @property
    def right_a(self) -> np.ndarray:
        return self.pred_a == self.labels  # (N,) bool

    @property
    def right_b(self) -> np.ndarray:
        return self.pred_b == self.labels  # (N,) bool


def align(a: Predictions, b: Predictions) -> Aligned:
    """Match A's and B's answers picture by picture; ValueError with `test_set_refusal`'s sentence otherwise."""
    refusal = test_set_refusal(a, b)
    if refusal:
        raise ValueError(refusal)
    order_a, order_b = np.argsort(a.index, kind="stable"), np.argsort(b.index, kind="stable")  # (N,) each
    return Aligned(
        index=a.index[order_a], labels=a.labels[order_a],
        pred_a=a.pred[order_a], pred_b=b.pred[order_b],
        conf_a=mistakes.confidence(a.probs, a.pred)[order_a], conf_b=mistakes.confidence(b.probs, b.pred)[order_b],
        num_classes=a.probs.shape[1])


# ---------------------------------------------------------------------------------------------
# Counts: accuracies, the difference matrix, flips
# ---------------------------------------------------------------------------------------------

def accuracies(x: Aligned) -> tuple[float, float]:
    """Overall test accuracy of A and of B (shares of right answers)."""
    return float(x.right_a.mean()), float(x.right_b.mean())


@dataclass(frozen=True)
class Outcomes:
    """How many pictures each run got right: in both, in A only (flipped to wrong), in B only, in neither."""
    both: int
    only_a: int
    only_b: int
    neither: int


def outcome_counts(x: Aligned) -> Outcomes:
    """Every picture in one of four groups; only_b - only_a is B's gain in right answers."""
    a, b = x.right_a, x.right_b
    return Outcomes(int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum()), int((~a & ~b).sum()))


def difference_counts(x: Aligned) -> np.ndarray:
    """(C, C) int64: B's confusion counts minus A's (row = true class, column = predicted class)."""
    count_a = mistakes.confusion_counts(x.labels, x.pred_a, x.num_classes)
    return mistakes.confusion_counts(x.labels, x.pred_b, x.num_classes) - count_a


def class_accuracies(x: Aligned) -> tuple[np.ndarray, np.ndarray]:
    """(C,) per-class accuracy of A and of B; NaN for a class with no pictures."""
    return (mistakes.class_accuracy(x.labels, x.pred_a, x.num_classes),
            mistakes.class_accuracy(x.labels, x.pred_b, x.num_classes))


def flip_counts(x: Aligned) -> tuple[np.ndarray, np.ndarray]:
    """(C, C) int64 each: every square's flips "right in A, wrong in B" and "wrong in A, right in B".

    Off the diagonal, [t, p] counts pictures of class t that the run that got it wrong put in p; on the
    diagonal, [t, t] counts all of class t's flips in that direction (its row's sum off the diagonal).
    """
    lost = _flip_matrix(x.labels, x.pred_b, x.right_a & ~x.right_b, x.num_classes)
    gained = _flip_matrix(x.labels, x.pred_a, ~x.right_a & x.right_b, x.num_classes)
    return lost, gained


def _flip_matrix(labels: np.ndarray, wrong_pred: np.ndarray, flipped: np.ndarray, num_classes: int) -> np.ndarray:
    counts = mistakes.confusion_counts(labels[flipped], wrong_pred[flipped], num_classes)  # diagonal stays 0
    counts[np.diag_indices(num_classes)] = counts.sum(axis=1)
    return counts


@dataclass(frozen=True)
class Flips:
    """A square's flipped pictures as positions in the `Aligned` arrays, the more confident mistake first."""
    right_in_a: np.ndarray  # (K,) right in A, wrong in B: B's most confident wrong answers first
    right_in_b: np.ndarray  # (M,) wrong in A, right in B: A's most confident wrong answers first


def flips(x: Aligned, true_class: int, pred_class: int) -> Flips:
    """The flipped pictures of square (true_class, pred_class); a diagonal square is the whole class.

    Their numbers are exactly `flip_counts(x)[0][t, p]` and `flip_counts(x)[1][t, p]`.
    """
    if not (0 <= true_class < x.num_classes and 0 <= pred_class < x.num_classes):
        raise ValueError(f"A square is two class numbers from 0 to {x.num_classes - 1}, got "
                         f"({true_class}, {pred_class}).")
    of_class = x.labels == true_class
    if true_class == pred_class:
        lost, gained = of_class & x.right_a & ~x.right_b, of_class & ~x.right_a & x.right_b
    else:
        lost = of_class & x.right_a & (x.pred_b == pred_class)
        gained = of_class & x.right_b & (x.pred_a == pred_class)
    return Flips(_most_confident_first(lost, x.conf_b), _most_confident_first(gained, x.conf_a))


def _most_confident_first(keep: np.ndarray, conf: np.ndarray) -> np.ndarray:
    positions = np.flatnonzero(keep)  # (K,)
    return positions[np.argsort(-conf[positions], kind="stable")]


def accuracy_change(x: Aligned) -> str:
    """B's accuracy against A's in words: '+3.2 points (16 pictures more right)', or 'the same'."""
    right_a, right_b = int(x.right_a.sum()), int(x.right_b.sum())
    if right_a == right_b:
        return "the same"
    more = right_b - right_a
    points = 100 * more / len(x.labels)
    pictures = f"{abs(more):,} picture{'s' if abs(more) != 1 else ''}"
    return f"{points:+.1f} points ({pictures} {'more' if more > 0 else 'fewer'} right)"
