"""core.analysis.compare on hand-made predictions: alignment by picture (shuffled orders), the refusals, the
difference matrix, per-class accuracies and the flipped pictures of every square."""
from __future__ import annotations

import numpy as np
import pytest

from core.analysis import compare, mistakes
from core.rundir.predictions import Predictions

C = 3
# Eight test pictures, by their place in the test set (0..7): true class, A's answer, B's answer.
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2])
PRED_A = np.array([0, 1, 0, 1, 0, 2, 2, 2])
PRED_B = np.array([1, 0, 0, 1, 2, 1, 0, 2])
# By hand: picture 0 right in A, B said 1; picture 1 A said 1, right in B; picture 4 A said 0 and B said 2
# (wrong in both: not a flip); picture 5 A said 2, right in B; picture 6 right in A, B said 0.


def one_hot(pred: np.ndarray, sure: np.ndarray) -> np.ndarray:
    """(N, C) probabilities whose answer is `pred`, given with probability `sure`."""
    probs = np.tile(((1 - sure) / (C - 1))[:, None], (1, C)).astype(np.float32)
    probs[np.arange(len(pred)), pred] = sure
    return probs


def predictions(pred: np.ndarray, order: np.ndarray, labels: np.ndarray = LABELS,
                sure: np.ndarray | None = None) -> Predictions:
    """Test predictions saved in the picture order `order` (what a shuffled evaluation would write)."""
    sure = np.linspace(0.5, 0.9, len(pred)) if sure is None else sure
    probs = one_hot(pred, sure)
    return Predictions(labels[order], pred[order], probs[order], order.copy(), "test")


IN_ORDER = np.arange(8)
SHUFFLED = np.array([5, 2, 7, 0, 3, 6, 1, 4])


@pytest.fixture
def aligned() -> compare.Aligned:
    # A saved in place order, B shuffled: matching must go by index, not by row.
    return compare.align(predictions(PRED_A, IN_ORDER), predictions(PRED_B, SHUFFLED))


# ---------------------------------------------------------------------------------------------
# Alignment
# ---------------------------------------------------------------------------------------------

def test_align_matches_pictures_by_their_place_in_the_test_set(aligned):
    assert aligned.index.tolist() == list(range(8))
    assert aligned.labels.tolist() == LABELS.tolist()
    assert aligned.pred_a.tolist() == PRED_A.tolist() and aligned.pred_b.tolist() == PRED_B.tolist()
    assert np.allclose(aligned.conf_b, np.linspace(0.5, 0.9, 8))  # each picture keeps its own confidence
    both_shuffled = compare.align(predictions(PRED_A, SHUFFLED[::-1].copy()), predictions(PRED_B, SHUFFLED))
    assert both_shuffled.pred_a.tolist() == PRED_A.tolist() and both_shuffled.pred_b.tolist() == PRED_B.tolist()


def test_accuracies_and_class_accuracies(aligned):
    assert compare.accuracies(aligned) == (5 / 8, 5 / 8)
    assert compare.outcome_counts(aligned) == compare.Outcomes(both=3, only_a=2, only_b=2, neither=1)
    acc_a, acc_b = compare.class_accuracies(aligned)
    assert np.allclose(acc_a, [2 / 3, 1 / 3, 1.0]) and np.allclose(acc_b, [2 / 3, 2 / 3, 1 / 2])


def test_a_class_without_pictures_has_no_accuracy():
    a = predictions(PRED_A, IN_ORDER)
    four = Predictions(a.labels, a.pred, np.hstack([a.probs, np.zeros((8, 1), np.float32)]), a.index, "test")
    acc_a, acc_b = compare.class_accuracies(compare.align(four, four))
    assert np.isnan(acc_a[3]) and np.isnan(acc_b[3])


def test_accuracy_change_in_words(aligned):
    assert compare.accuracy_change(aligned) == "the same"  # two flips each way
    better = compare.align(predictions(PRED_A, IN_ORDER), predictions(LABELS, SHUFFLED))
    assert compare.accuracy_change(better) == "+37.5 points (3 pictures more right)"
    one_fewer = PRED_A.copy()
    one_fewer[0] = 2
    worse = compare.align(predictions(PRED_A, IN_ORDER), predictions(one_fewer, SHUFFLED))
    assert compare.accuracy_change(worse) == "-12.5 points (1 picture fewer right)"


# ---------------------------------------------------------------------------------------------
# The difference matrix and the flips
# ---------------------------------------------------------------------------------------------

def test_difference_counts_are_b_minus_a(aligned):
    # Class 0: both say 0, 0, 1 in some order; class 1: A says 1, 0, 2 and B 1, 2, 1; class 2: B moves one to 0.
    expected = np.array([[0, 0, 0],
                         [-1, 1, 0],
                         [1, 0, -1]])
    assert np.array_equal(compare.difference_counts(aligned), expected)
    counts_a, counts_b = (mistakes.confusion_counts(LABELS, pred, C) for pred in (PRED_A, PRED_B))
    assert np.array_equal(compare.difference_counts(aligned), counts_b - counts_a)


def test_flips_of_each_square_by_hand(aligned):
    def positions(t: int, p: int) -> tuple[list[int], list[int]]:
        f = compare.flips(aligned, t, p)
        return aligned.index[f.right_in_a].tolist(), aligned.index[f.right_in_b].tolist()

    assert positions(0, 1) == ([0], [1])  # picture 0: A right, B said 1; picture 1: A said 1, B right
    assert positions(0, 0) == ([0], [1])  # the class: every flip of its pictures
    assert positions(2, 0) == ([6], [])
    assert positions(2, 2) == ([6], [])
    # Picture 5 flipped (A said 2); picture 4 moved into square (1, 2) too, but wrong in both: not a flip.
    assert positions(1, 2) == ([], [5])
    assert positions(1, 1) == ([], [5])
    assert positions(1, 0) == ([], [])  # picture 4 left this square for another mistake
    assert positions(0, 2) == ([], [])


def test_flip_counts_equal_the_flips_of_every_square(aligned):
    lost, gained = compare.flip_counts(aligned)
    for t in range(C):
        for p in range(C):
            f = compare.flips(aligned, t, p)
            assert (lost[t, p], gained[t, p]) == (len(f.right_in_a), len(f.right_in_b))
    assert lost.trace() == int((aligned.right_a & ~aligned.right_b).sum()) == 2
    assert gained.trace() == int((~aligned.right_a & aligned.right_b).sum()) == 2
    # A diagonal square's difference is exactly its flips: gained minus lost.
    assert np.array_equal(np.diag(compare.difference_counts(aligned)), np.diag(gained) - np.diag(lost))


def test_flips_on_random_predictions_agree_with_accuracies():
    rng = np.random.default_rng(1)
    n, c = 600, 10
    labels = rng.integers(0, c, n)
    order_a, order_b = rng.permutation(n), rng.permutation(n)
    probs_a, probs_b = (rng.dirichlet(np.ones(c), n).astype(np.float32) for _ in "ab")  # (N, C) each
    a = Predictions(labels[order_a], probs_a.argmax(1), probs_a, order_a, "test")
    b = Predictions(labels[order_b], probs_b.argmax(1), probs_b, order_b, "test")
    x = compare.align(a, b)
    lost, gained = compare.flip_counts(x)
    acc_a, acc_b = compare.accuracies(x)
    assert np.isclose(acc_b - acc_a, (gained.trace() - lost.trace()) / n)
    assert np.array_equal(np.diag(compare.difference_counts(x)), np.diag(gained) - np.diag(lost))
    assert np.array_equal(lost.sum(axis=1) - np.diag(lost), np.diag(lost))  # the class is its squares together


def test_flips_put_the_most_confident_mistake_first():
    labels = np.zeros(4, dtype=np.int64)
    a = predictions(np.zeros(4, dtype=np.int64), IN_ORDER[:4], labels)
    b = predictions(np.ones(4, dtype=np.int64), IN_ORDER[:4], labels, sure=np.array([0.5, 0.9, 0.7, 0.9]))
    x = compare.align(a, b)
    assert x.index[compare.flips(x, 0, 1).right_in_a].tolist() == [1, 3, 2, 0]  # ties keep the test-set order


def test_a_square_outside_the_classes_is_refused(aligned):
    with pytest.raises(ValueError, match=r"two class numbers from 0 to 2, got \(3, 0\)"):
        compare.flips(aligned, 3, 0)


# ---------------------------------------------------------------------------------------------
# Refusals: one sentence when the test sets differ
# ---------------------------------------------------------------------------------------------

def one_sentence(text: str) -> None:
    assert text.endswith(".") and ". " not in text and "\n" not in text, text


def test_same_pictures_in_another_order_are_not_refused():
    assert compare.test_set_refusal(predictions(PRED_A, IN_ORDER), predictions(PRED_B, SHUFFLED)) is None


def test_a_different_number_of_pictures_is_refused():
    a = predictions(PRED_A, IN_ORDER)
    b = predictions(PRED_B[:6], IN_ORDER[:6], LABELS[:6])
    refusal = compare.test_set_refusal(a, b)
    assert refusal == ("Run A was tested on 8 pictures and run B on 6, so they cannot be compared: pick a run B "
                       "that was tested on the same pictures as run A.")
    with pytest.raises(ValueError, match="Run A was tested on 8 pictures"):
        compare.align(a, b)


def test_different_pictures_are_refused():
    b = predictions(PRED_B, IN_ORDER)
    b = Predictions(b.labels, b.pred, b.probs, b.index + 2, "test")  # pictures 2..9 instead of 0..7
    refusal = compare.test_set_refusal(predictions(PRED_A, IN_ORDER), b)
    assert refusal.startswith("Runs A and B were tested on different pictures (2 of run A's 8 are not in run B's")
    one_sentence(refusal)


def test_a_picture_listed_twice_is_refused():
    b = predictions(PRED_B, IN_ORDER)
    index = b.index.copy()
    index[7] = 3
    twice = Predictions(b.labels, b.pred, b.probs, index, "test")
    refusal = compare.test_set_refusal(predictions(PRED_A, IN_ORDER), twice)
    assert refusal.startswith("Run B's test results list picture 3 more than once")
    one_sentence(refusal)


def test_a_different_class_count_is_refused():
    b = predictions(PRED_B, SHUFFLED)
    four = Predictions(b.labels, b.pred, np.hstack([b.probs, np.zeros((8, 1), np.float32)]), b.index, "test")
    refusal = compare.test_set_refusal(predictions(PRED_A, IN_ORDER), four)
    assert refusal == ("Run A tells 3 classes apart and run B 4, so they cannot be compared: pick a run B trained "
                       "on the same classes as run A.")


def test_different_true_classes_are_refused():
    labels = LABELS.copy()
    labels[[0, 7]] = [2, 1]
    refusal = compare.test_set_refusal(predictions(PRED_A, IN_ORDER), predictions(PRED_B, SHUFFLED, labels))
    assert refusal.startswith("Runs A and B give different true classes to 2 of their 8 pictures")
    one_sentence(refusal)
