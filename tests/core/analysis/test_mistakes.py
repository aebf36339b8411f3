"""core.analysis.mistakes against scikit-learn and by hand on fixed predictions: matrix, pairs, scores, selections, pages."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from core.analysis import mistakes

C = 4
# 12 fixed predictions over 4 classes; class 3 has no images and is never predicted by the model.
LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
PRED = np.array([0, 1, 1, 0, 1, 0, 2, 2, 1, 2, 1, 0])
PROBS = np.array([
    [.9, .1, 0, 0], [.3, .6, .1, 0], [.1, .8, .1, 0], [.5, .4, .1, 0],
    [.2, .7, .1, 0], [.55, .45, 0, 0], [.1, .2, .7, 0],
    [0, .1, .9, 0], [.1, .5, .4, 0], [.1, .2, .7, 0], [0, .95, .05, 0], [.4, .3, .3, 0],
])


def random_predictions(n: int = 500, c: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    probs = rng.dirichlet(np.ones(c), n).astype(np.float32)
    return labels, probs.argmax(1), probs


# ---------------------------------------------------------------------------------------------
# Confusion matrix
# ---------------------------------------------------------------------------------------------

def test_counts_match_sklearn_on_fixed_and_random_predictions():
    assert np.array_equal(mistakes.confusion_counts(LABELS, PRED, C), confusion_matrix(LABELS, PRED, labels=range(C)))
    labels, pred, _ = random_predictions()
    counts = mistakes.confusion_counts(labels, pred, 10)
    assert np.array_equal(counts, confusion_matrix(labels, pred, labels=range(10)))
    assert counts.sum() == len(labels)


def test_counts_by_hand():
    counts = mistakes.confusion_counts(LABELS, PRED, C)
    assert counts.tolist() == [[2, 2, 0, 0], [1, 1, 1, 0], [1, 2, 2, 0], [0, 0, 0, 0]]


def test_row_normalise_rows_sum_to_one_and_empty_row_is_zero():
    shares = mistakes.row_normalise(mistakes.confusion_counts(LABELS, PRED, C))
    assert np.allclose(shares[:3].sum(1), 1.0)
    assert np.allclose(shares[0], [0.5, 0.5, 0, 0])
    assert np.all(shares[3] == 0)


@pytest.mark.parametrize("labels, pred, message", [
    ([0, 1], [0], "same length"),
    ([0, 4], [0, 1], "from 0 to 3"),
    ([0, 1], [-1, 1], "from 0 to 3"),
])
def test_bad_inputs_raise_one_sentence(labels, pred, message):
    with pytest.raises(ValueError, match=message):
        mistakes.confusion_counts(np.array(labels), np.array(pred), C)


def test_empty_predictions_give_zero_matrix():
    assert mistakes.confusion_counts(np.array([], int), np.array([], int), 3).sum() == 0


# ---------------------------------------------------------------------------------------------
# Most confused pairs
# ---------------------------------------------------------------------------------------------

def test_pairs_count_both_directions_and_rank():
    counts = mistakes.confusion_counts(LABELS, PRED, C)
    pairs = mistakes.confused_pairs(counts)
    # 0<->1: 2 + 1 = 3; 1<->2: 1 + 2 = 3; 0<->2: 0 + 1 = 1; pairs with class 3 have no mistakes.
    assert [(p.a, p.b, p.a_as_b, p.b_as_a, p.total) for p in pairs] == [
        (0, 1, 2, 1, 3), (1, 2, 1, 2, 3), (0, 2, 0, 1, 1)]
    assert pairs[0].worse_direction == (0, 1)
    assert pairs[1].worse_direction == (2, 1)
    assert mistakes.confused_pairs(counts, limit=1) == pairs[:1]


def test_pairs_total_equals_off_diagonal_sum_on_random_predictions():
    labels, pred, _ = random_predictions(seed=3)
    counts = mistakes.confusion_counts(labels, pred, 10)
    pairs = mistakes.confused_pairs(counts)
    assert sum(p.total for p in pairs) == counts.sum() - np.trace(counts)
    totals = [p.total for p in pairs]
    assert totals == sorted(totals, reverse=True)
    for p in pairs:
        assert p.total == counts[p.a, p.b] + counts[p.b, p.a]


def test_pair_between_tie_and_same_class():
    counts = np.array([[5, 2], [2, 5]])
    assert mistakes.pair_between(counts, 0, 1).worse_direction == (0, 1)
    with pytest.raises(ValueError, match="two different classes"):
        mistakes.pair_between(counts, 1, 1)


def test_famous_pairs_only_when_both_classes_exist():
    cifar = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert mistakes.famous_pairs(cifar) == [(0, 2), (3, 5), (1, 9)]
    assert mistakes.famous_pairs(["cat", "dog", "bird"]) == [(0, 1)]
    assert mistakes.famous_pairs([f"class{k}" for k in range(10)]) == []


# ---------------------------------------------------------------------------------------------
# Per-class scores
# ---------------------------------------------------------------------------------------------

def test_class_report_matches_sklearn():
    for labels, pred, c in [(LABELS, PRED, C), (*random_predictions(seed=5)[:2], 10)]:
        report = mistakes.class_report(labels, pred, c)
        p, r, f, s = precision_recall_fscore_support(labels, pred, labels=range(c), average=None, zero_division=0)
        assert np.allclose(report.precision, p) and np.allclose(report.recall, r) and np.allclose(report.f1, f)
        assert np.array_equal(report.support, s)


def test_per_class_accuracy_is_share_right_and_nan_without_images():
    report = mistakes.class_report(LABELS, PRED, C)
    assert np.allclose(report.accuracy[:3], [2 / 4, 1 / 3, 2 / 5])
    assert np.isnan(report.accuracy[3])
    assert report.precision[3] == 0 and report.f1[3] == 0


# ---------------------------------------------------------------------------------------------
# Selecting a cell
# ---------------------------------------------------------------------------------------------

def test_cell_positions_count_equals_cell_and_most_confident_first():
    counts = mistakes.confusion_counts(LABELS, PRED, C)
    for t in range(C):
        for p in range(C):
            positions = mistakes.cell_positions(LABELS, PRED, PROBS, t, p)
            assert len(positions) == counts[t, p]
            assert np.all(LABELS[positions] == t) and np.all(PRED[positions] == p)
            conf = PROBS[positions, p]
            assert np.all(np.diff(conf) <= 0)
    # true 2, predicted 1: positions 8 (0.5) and 10 (0.95) -> 10 first.
    assert mistakes.cell_positions(LABELS, PRED, PROBS, 2, 1).tolist() == [10, 8]


def test_cell_positions_on_random_predictions_cover_every_image_once():
    labels, pred, probs = random_predictions(2000, seed=9)
    seen = np.concatenate([mistakes.cell_positions(labels, pred, probs, t, p) for t in range(10) for p in range(10)])
    assert sorted(seen.tolist()) == list(range(len(labels)))


# ---------------------------------------------------------------------------------------------
# Gallery: filters, orders, pages
# ---------------------------------------------------------------------------------------------

def test_gallery_filters():
    gp = mistakes.gallery_positions
    assert len(gp(LABELS, PRED, PROBS)) == 12
    assert sorted(gp(LABELS, PRED, PROBS, true_class=2).tolist()) == [7, 8, 9, 10, 11]
    assert sorted(gp(LABELS, PRED, PROBS, pred_class=1).tolist()) == [1, 2, 4, 8, 10]
    assert sorted(gp(LABELS, PRED, PROBS, outcome="correct").tolist()) == [0, 3, 4, 7, 9]
    assert sorted(gp(LABELS, PRED, PROBS, outcome="wrong").tolist()) == [1, 2, 5, 6, 8, 10, 11]
    assert sorted(gp(LABELS, PRED, PROBS, true_class=2, pred_class=1, outcome="wrong").tolist()) == [8, 10]
    assert len(gp(LABELS, PRED, PROBS, true_class=2, pred_class=1, outcome="correct")) == 0
    assert len(gp(LABELS, PRED, PROBS, true_class=3)) == 0


def test_gallery_confident_mistakes_order():
    order = mistakes.gallery_positions(LABELS, PRED, PROBS, order="confident-mistakes").tolist()
    # wrong ones by confidence, high to low: 10 (.95), 2 (.8), 6 (.7), 1 (.6), 5 (.55), 8 (.5), 11 (.4);
    # then right ones, closest calls first: 3 (.5), 4 (.7), 9 (.7), 0 (.9), 7 (.9).
    assert order == [10, 2, 6, 1, 5, 8, 11, 3, 4, 9, 0, 7]


def test_gallery_least_confident_order_and_random_seed():
    labels, pred, probs = random_predictions(300, seed=1)
    least = mistakes.gallery_positions(labels, pred, probs, order="least-confident")
    assert np.all(np.diff(mistakes.confidence(probs, pred)[least]) >= 0)
    a = mistakes.gallery_positions(labels, pred, probs, outcome="wrong", order="random", seed=7)
    b = mistakes.gallery_positions(labels, pred, probs, outcome="wrong", order="random", seed=7)
    c = mistakes.gallery_positions(labels, pred, probs, outcome="wrong", order="random", seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert sorted(a.tolist()) == np.flatnonzero(labels != pred).tolist()


@pytest.mark.parametrize("kwargs, message", [
    ({"outcome": "maybe"}, "outcome must be one of"), ({"order": "best"}, "order must be one of")])
def test_gallery_bad_choice_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mistakes.gallery_positions(LABELS, PRED, PROBS, **kwargs)


def test_paging():
    items = np.arange(50)
    assert mistakes.page_count(50, 24) == 3 and mistakes.page_count(48, 24) == 2 and mistakes.page_count(0, 24) == 1
    assert mistakes.page_of(items, 1, 24).tolist() == list(range(24))
    assert mistakes.page_of(items, 3, 24).tolist() == [48, 49]
    assert mistakes.page_of(items, 9, 24).tolist() == [48, 49]  # past the end: the last page
    assert mistakes.page_of(items, 0, 24).tolist() == list(range(24))
    assert len(mistakes.page_of(np.arange(0), 1, 24)) == 0
    pages = np.concatenate([mistakes.page_of(items, k, 7) for k in range(1, mistakes.page_count(50, 7) + 1)])
    assert pages.tolist() == items.tolist()
    with pytest.raises(ValueError, match="per_page"):
        mistakes.page_count(5, 0)


def test_top_k():
    assert mistakes.top_k(np.array([.1, .6, .05, .25]), 3) == [(1, pytest.approx(.6)), (3, pytest.approx(.25)),
                                                               (0, pytest.approx(.1))]
    assert len(mistakes.top_k(np.array([.5, .5]), 3)) == 2


def test_ten_thousand_image_cell_selection_is_fast():
    import time

    labels, pred, probs = random_predictions(10_000, seed=2)
    start = time.perf_counter()
    for _ in range(10):
        counts = mistakes.confusion_counts(labels, pred, 10)
        mistakes.cell_positions(labels, pred, probs, 3, 5)
        mistakes.gallery_positions(labels, pred, probs, outcome="wrong")
    assert (time.perf_counter() - start) / 10 < 0.05
    assert counts.sum() == 10_000


def test_tally_counts_right_and_wrong():
    judged = mistakes.tally(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1]))
    assert (judged.total, judged.right, judged.wrong, judged.accuracy) == (4, 2, 2, 0.5)
    assert mistakes.tally(np.array([], int), np.array([], int)).accuracy == 0.0
    with pytest.raises(ValueError):
        mistakes.tally(np.array([0, 1]), np.array([0]))
