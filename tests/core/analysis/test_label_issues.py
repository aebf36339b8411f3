"""core.analysis.label_issues: confident learning on hand-made probabilities whose answer is worked out by hand,
and on synthetic predictions with planted label flips, which must come out near the top."""
from __future__ import annotations

import numpy as np
import pytest

from core.analysis import label_issues as li

# 8 pictures, 3 classes. Thresholds (mean self-confidence per given label):
# t0 = (.9 + .8 + .1) / 3 = .6, t1 = (.85 + .9 + .7) / 3 = .8167, t2 = (.9 + .3) / 2 = .6
HAND_PROBS = np.array([
    [.90, .05, .05],  # 0 given 0: fine
    [.80, .10, .10],  # 1 given 0: fine
    [.10, .85, .05],  # 2 given 0: below t0, class 1 above t1 -> suspect, suggested 1
    [.05, .85, .10],  # 3 given 1: fine
    [.05, .90, .05],  # 4 given 1: fine
    [.20, .70, .10],  # 5 given 1: below t1, but no other class reaches its threshold -> not suspect
    [.05, .05, .90],  # 6 given 2: fine
    [.65, .05, .30],  # 7 given 2: below t2, class 0 above t0 -> suspect, suggested 0
])
HAND_LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2])


def test_thresholds_are_the_mean_self_confidence_of_each_given_class():
    assert np.allclose(li.per_class_thresholds(HAND_PROBS, HAND_LABELS), [.6, 2.45 / 3, .6])


def test_hand_made_suspects_their_suggestions_and_order():
    issues = li.find_label_issues(HAND_PROBS, HAND_LABELS)
    assert issues.positions.tolist() == [2, 7]
    assert issues.given.tolist() == [0, 2] and issues.suggested.tolist() == [1, 0]
    assert np.allclose(issues.scores, [.10, .30]) and np.allclose(issues.suggested_prob, [.85, .65])


def test_hand_made_confident_joint():
    # Picture 5 reaches no threshold and is not counted; picture 7 counts under (given 2, confident 0).
    assert li.confident_joint(HAND_PROBS, HAND_LABELS).tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_normalized_margin_can_reorder_the_suspects():
    # Pictures 2 and 3 are given 0 (t0 = .4875) and reach t1 = .5: 2 is the less self-confident,
    # 3 has the larger gap to its rival.
    probs = np.array([[.9, .05, .05], [.9, .05, .05], [.05, .50, .45], [.10, .90, .00],
                      [.4, .5, .1], [.4, .5, .1], [.05, .05, .9], [.05, .05, .9]])
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    by_self = li.find_label_issues(probs, labels, "self_confidence")
    by_margin = li.find_label_issues(probs, labels, "normalized_margin")
    assert by_self.positions.tolist() == [2, 3]
    assert by_margin.positions.tolist() == [3, 2]
    assert np.allclose(by_margin.scores, [(.1 - .9 + 1) / 2, (.05 - .5 + 1) / 2])


def test_a_class_nobody_was_given_is_never_suggested():
    probs = np.array([[.1, .1, .8], [.9, .05, .05], [.1, .8, .1], [.05, .9, .05]])
    labels = np.array([0, 0, 1, 1])  # nothing is given class 2
    thresholds = li.per_class_thresholds(probs, labels)
    assert np.isnan(thresholds[2])
    issues = li.find_label_issues(probs, labels)
    assert 2 not in issues.suggested.tolist()


def test_nothing_suspect_when_the_model_agrees_with_every_label():
    probs = np.eye(4)[[0, 1, 2, 3, 0, 1]] * .9 + .025
    issues = li.find_label_issues(probs, np.array([0, 1, 2, 3, 0, 1]))
    assert len(issues.positions) == 0 and issues.confident_joint.trace() == 6


def test_filter_keeps_the_rank_order_of_one_given_class():
    issues = li.find_label_issues(HAND_PROBS, HAND_LABELS)
    assert li.filter_given(issues, 2).tolist() == [1]
    assert li.filter_given(issues, 1).tolist() == []
    assert li.filter_given(issues, None).tolist() == [0, 1]


@pytest.mark.parametrize("probs, labels, words", [
    (np.ones(5), np.zeros(5, int), "a table of decimal numbers"),
    (np.full((2, 3), 2.0), np.zeros(2, int), "numbers from 0 to 1"),
    (np.full((2, 3), np.nan), np.zeros(2, int), "numbers from 0 to 1"),
    (np.full((2, 3), .3), np.zeros(3, int), "must be 2 whole numbers"),
    (np.full((2, 3), .3), np.array([0.0, 1.0]), "must be 2 whole numbers"),
    (np.full((2, 3), .3), np.array([0, 3]), "class numbers from 0 to 2"),
])
def test_bad_input_is_one_sentence(probs, labels, words):
    with pytest.raises(ValueError, match=words):
        li.find_label_issues(probs, labels)


def test_unknown_ranking_names_the_choices():
    with pytest.raises(ValueError, match="choose one of: self_confidence, normalized_margin"):
        li.find_label_issues(HAND_PROBS, HAND_LABELS, "loss")


def synthetic_predictions(n: int = 3000, num_classes: int = 10, flips: int = 60, seed: int = 0):
    """A decent imperfect model's probabilities on true labels, and the labels with `flips` of them changed."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, num_classes, n)
    logits = rng.normal(0, 1, (n, num_classes))
    logits[np.arange(n), truth] += rng.uniform(1.5, 6, n)  # some pictures are hard, most are easy
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    given = truth.copy()
    flipped = rng.choice(n, flips, replace=False)
    given[flipped] = (truth[flipped] + rng.integers(1, num_classes, flips)) % num_classes
    return probs.astype(np.float32), given, truth, flipped


@pytest.mark.parametrize("ranking", li.RANKINGS)
def test_planted_label_flips_rank_near_the_top(ranking):
    probs, given, truth, flipped = synthetic_predictions()
    issues = li.find_label_issues(probs, given, ranking)
    top = issues.positions[:len(flipped)]
    assert len(top) >= 30 and np.isin(top, flipped).mean() >= 0.85  # the top of the list is planted flips
    # Confident learning is cautious: a flip is found only where the model is sure of the true class,
    # which on this model is about two flips in three.
    assert np.isin(flipped, issues.positions).mean() >= 0.5
    found = np.isin(issues.positions, flipped)
    assert (issues.suggested[found] == truth[issues.positions[found]]).mean() >= 0.9  # with their true class
