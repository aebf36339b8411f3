"""core.analysis.dynamics on hand-made epochs with answers worked out by hand, and on run folders written to disk."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from core.analysis import dynamics
from core.analysis.dynamics import AMBIGUOUS, EASY, HARD, NEVER
from core.rundir import layout, predictions

# 3 classes, 5 pictures, 4 epochs (numbered 1, 2, 3, 5: epoch 4 is missing). TRUE[e][i] is the probability
# the model gave picture i's true class after epoch e; the rest goes to the next class, so a picture is
# right exactly when TRUE > 0.5.
LABELS = np.array([0, 1, 2, 0, 1])
EPOCHS = [1, 2, 3, 5]
TRUE = np.array([
    # pic 0  pic 1  pic 2  pic 3  pic 4
    [0.90, 0.20, 0.60, 0.10, 0.30],  # epoch 1: right 0, 2
    [0.90, 0.70, 0.20, 0.20, 0.30],  # epoch 2: right 0, 1       (2 forgotten)
    [0.90, 0.20, 0.80, 0.30, 0.30],  # epoch 3: right 0, 2       (1 forgotten)
    [0.90, 0.80, 0.20, 0.20, 0.30],  # epoch 5: right 0, 1       (2 forgotten again)
])


def probs_of(true: np.ndarray) -> np.ndarray:
    """(N, 3) probabilities: `true` on the label, the rest on the next class."""
    out = np.zeros((len(LABELS), 3), dtype=np.float32)
    out[np.arange(len(LABELS)), LABELS] = true
    out[np.arange(len(LABELS)), (LABELS + 1) % 3] = 1 - true
    return out


def hand_stack() -> dynamics.EpochStack:
    index = np.arange(len(LABELS)) + 100
    readings = [(e, predictions.Predictions(LABELS, probs_of(t).argmax(1), probs_of(t), index, "val"), None)
                for e, t in zip(EPOCHS, TRUE)]
    return dynamics.build_stack(readings[::-1])  # any order in, oldest first out


def test_stack_shape_and_order():
    stack = hand_stack()
    assert stack.epochs.tolist() == EPOCHS and stack.probs.shape == (4, 5, 3) and stack.probs.dtype == np.float16
    assert stack.skipped == () and stack.index.tolist() == [100, 101, 102, 103, 104]
    assert stack.predictions().pred.tolist() == [0, 1, 0, 1, 2]  # newest epoch: only 0 and 1 right


def test_first_right_learned_for_good_and_forgetting():
    d = dynamics.learning_dynamics(hand_stack())
    assert d.first_correct.tolist() == [1, 2, 1, NEVER, NEVER]
    # Picture 1 is right at epoch 5 only among the last ones; picture 2 is wrong at the newest epoch.
    assert d.learned_for_good.tolist() == [1, 5, NEVER, NEVER, NEVER]
    # Forgetting across the missing epoch 4 counts too (epoch 3 right, epoch 5 wrong for picture 2).
    assert d.forgetting.tolist() == [0, 1, 2, 0, 0]
    first, for_good = dynamics.first_learned_counts(d)
    assert first.tolist() == [2, 1, 0, 0] and for_good.tolist() == [1, 0, 0, 1]


def test_confidence_spread_and_regions():
    d = dynamics.learning_dynamics(hand_stack())
    assert np.allclose(d.confidence, TRUE.mean(axis=0), atol=1e-3)  # float16 on disk
    assert np.allclose(d.spread, TRUE.std(axis=0), atol=1e-3)
    # 0: steady 0.9 -> easy; 1 and 2 swing by 0.25 and 0.28 -> ambiguous; 3 and 4: steadily low -> hard.
    assert d.region.tolist() == [EASY, AMBIGUOUS, AMBIGUOUS, HARD, HARD]


def test_region_thresholds_are_inclusive_and_spread_comes_first():
    confidence = np.array([0.5, 0.49, 0.9, 0.1])
    spread = np.array([0.0, 0.1, 0.2, 0.2])
    assert dynamics.regions(confidence, spread).tolist() == [EASY, HARD, AMBIGUOUS, AMBIGUOUS]


def test_lists_of_pictures():
    d = dynamics.learning_dynamics(hand_stack())
    assert dynamics.region_positions(d, HARD).tolist() == [3, 4]  # mean 0.2 before 0.3
    assert dynamics.region_positions(d, AMBIGUOUS).tolist() == [2, 1]  # mean 0.45 before 0.475
    assert dynamics.most_forgotten(d).tolist() == [2, 1]
    # A box over the low-confidence, low-spread corner, with its corners given in either order.
    assert dynamics.box_positions(d, (0.35, 0.0), (0.0, 0.1)).tolist() == [3, 4]
    assert dynamics.box_positions(d, (0.0, 1.0), (0.0, 0.5)).tolist() == [3, 4, 2, 1, 0]
    assert dynamics.box_positions(d, (0.95, 1.0), (0.0, 0.5)).tolist() == []
    with pytest.raises(ValueError, match="region must be a number from 0 to 2"):
        dynamics.region_positions(d, 3)


def test_pair_counts_from_a_stack_and_from_a_list_agree_with_the_matrix():
    stack = hand_stack()
    per_epoch = [stack.predictions(i) for i in range(len(stack.epochs))]
    # Class 2 pictures (only picture 2) taken for class 0: wrong after epochs 2 and 5.
    assert dynamics.pair_counts(stack, 2, 0).tolist() == [0, 1, 0, 1]
    assert dynamics.pair_counts(per_epoch, 2, 0).tolist() == [0, 1, 0, 1]
    from core.analysis import mistakes
    for t in range(3):
        for p in range(3):
            squares = [mistakes.confusion_counts(x.labels, x.pred, 3)[t, p] for x in per_epoch]
            assert dynamics.pair_counts(stack, t, p).tolist() == squares
    assert dynamics.pair_counts([], 0, 1).tolist() == []


def test_too_few_epochs_is_one_sentence():
    stack = hand_stack()
    one = dynamics.build_stack([(3, stack.predictions(0), None)])
    with pytest.raises(ValueError, match="at least 2 epochs.*this run has only 1 so far"):
        dynamics.learning_dynamics(one)
    assert "none that can be read" in dynamics.too_few_epochs(0) and dynamics.too_few_epochs(2) is None


def test_unusable_epochs_are_skipped_with_their_reason():
    stack = hand_stack()
    other = predictions.Predictions(LABELS[:4], np.zeros(4, int), np.full((4, 3), 1 / 3, np.float32),
                                    np.arange(4), "val")
    mixed = dynamics.build_stack([(1, stack.predictions(0), None), (2, None, "predictions/x.npz is damaged."),
                                  (3, other, None), (4, None, None), (5, stack.predictions(1), None)])
    assert mixed.epochs.tolist() == [1, 5]
    reasons = {s.epoch: s.reason for s in mixed.skipped}
    assert reasons[2] == "predictions/x.npz is damaged."
    assert "do not match those of epoch 1" in reasons[3] and "missing" in reasons[4]
    empty = dynamics.build_stack([(1, None, "gone.")])
    assert len(empty.epochs) == 0 and empty.skipped[0].reason == "gone."


def test_load_stack_from_a_run_folder(tmp_path):
    """Through core.rundir.predictions: a damaged epoch file is skipped, a run still training gains epochs."""
    run = tmp_path / "run"
    run.mkdir()
    index = np.arange(len(LABELS))
    predictions.save_val_labels(run, LABELS, index)
    for epoch, true in zip(EPOCHS[:2], TRUE):
        predictions.save_val_predictions(run, epoch, probs_of(true))
    first = dynamics.load_stack(run)
    assert first.epochs.tolist() == [1, 2]
    predictions.save_val_predictions(run, 3, probs_of(TRUE[2]))  # the next epoch of a run still training
    layout.val_epoch(run, 4).write_bytes(b"torn")
    grown = dynamics.load_stack(run)
    assert grown.epochs.tolist() == [1, 2, 3]
    assert [s.epoch for s in grown.skipped] == [4] and "val_epoch_0004.npz is damaged" in grown.skipped[0].reason
    assert np.array_equal(grown.probs, np.stack([probs_of(t) for t in TRUE[:3]]).astype(np.float16))
    shutil.rmtree(run / "predictions")
    assert len(dynamics.load_stack(run).epochs) == 0  # a run without validation results: an empty stack
