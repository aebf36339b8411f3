"""core.analysis.calibration on hand-made confidences whose bins and ECE are known, checked against scikit-learn's
calibration_curve and a plain loop; and the reliability chart's table (dashboard/charts/reliability.py)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from core.analysis import calibration, mistakes
from dashboard import charts


def picks(confidence: float, n: int, right: int) -> tuple[list[float], list[int]]:
    """`n` pictures all at `confidence`, the first `right` of them right."""
    return [confidence] * n, [1] * right + [0] * (n - right)


def joined(*groups) -> tuple[np.ndarray, np.ndarray]:
    conf = np.concatenate([g[0] for g in groups])
    correct = np.concatenate([g[1] for g in groups])
    return conf.astype(np.float64), correct.astype(np.int64)


def test_a_known_over_confident_case_has_its_hand_computed_ece():
    # 10 pictures at 95% with 8 right (gap 0.15), 10 at 55% with 6 right (gap 0.05): ECE = (0.15 + 0.05) / 2.
    rel = calibration.reliability(*joined(picks(0.95, 10, 8), picks(0.55, 10, 6)))
    assert rel.ece == pytest.approx(0.10)
    assert rel.count.tolist() == [0, 0, 0, 0, 0, 10, 0, 0, 0, 10]
    assert rel.accuracy[9] == pytest.approx(0.8) and rel.confidence[9] == pytest.approx(0.95)
    assert np.isnan(rel.accuracy[0]) and np.isnan(rel.confidence[0])  # empty bins have no numbers
    assert calibration.plain_sentence(rel, "test") == (
        "When the model says it is about 95% sure (as for 10 of the 20 test pictures), it is right 80% of "
        "the time: it is over-confident (surer of itself than it should be).")


def test_a_perfectly_calibrated_case_has_an_ece_of_zero_and_says_so():
    # In each bin the share right equals the confidence exactly: 20 pictures at 0.65 with 13 right, ...
    rel = calibration.reliability(*joined(picks(0.35, 20, 7), picks(0.65, 20, 13), picks(0.85, 40, 34)))
    assert rel.ece == pytest.approx(0.0, abs=1e-12)
    assert calibration.plain_sentence(rel, "val") == (
        "When the model says it is about 85% sure (as for 40 of the 80 validation pictures), it is right 85% "
        "of the time: its confidence can be taken at its word.")


def test_a_large_sample_right_as_often_as_it_is_sure_is_nearly_calibrated():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.1, 1.0, 200_000)
    rel = calibration.reliability(conf, (rng.uniform(size=conf.size) < conf).astype(int))
    assert rel.ece < 0.01


def test_an_under_confident_model_is_called_so():
    rel = calibration.reliability(*joined(picks(0.75, 30, 29), picks(0.45, 5, 5)))
    assert calibration.plain_sentence(rel, "test").endswith(
        "it is right 97% of the time: it is under-confident (right more often than it claims).")
    assert rel.ece == pytest.approx((30 * (29 / 30 - 0.75) + 5 * 0.55) / 35)


def test_the_sentence_speaks_of_the_busiest_confident_bin_else_the_busiest_of_all():
    rel = calibration.reliability(*joined(picks(0.45, 50, 20), picks(0.75, 5, 4), picks(0.92, 8, 8)))
    assert calibration.chosen_bin(rel) == 9  # 8 pictures from 70% up beat 5; the 50 below 70% do not count
    unsure = calibration.reliability(*joined(picks(0.45, 50, 20), picks(0.25, 10, 2)))
    assert calibration.chosen_bin(unsure) == 4


def test_bins_match_scikit_learn_and_a_plain_loop_on_awkward_values():
    rng = np.random.default_rng(1)
    conf = np.concatenate([rng.uniform(0, 1, 997), [0.0, 0.1, 0.2, 0.7, 1.0]])  # borders go to the lower bin
    correct = (rng.uniform(size=conf.size) < conf ** 2).astype(int)
    rel = calibration.reliability(conf, correct, n_bins=15)
    want_acc, want_conf = calibration_curve(correct, conf, n_bins=15, strategy="uniform")
    kept = rel.count > 0
    np.testing.assert_allclose(rel.accuracy[kept], want_acc)
    np.testing.assert_allclose(rel.confidence[kept], want_conf)
    edges = np.linspace(0, 1, 16)
    counts, ece = [], 0.0
    for b in range(15):
        inside = (conf > edges[b]) & (conf <= edges[b + 1]) | ((b == 0) & (conf == 0))
        counts.append(int(inside.sum()))
        if inside.any():
            ece += inside.sum() / conf.size * abs(correct[inside].mean() - conf[inside].mean())
    assert rel.count.tolist() == counts and rel.total == conf.size
    assert rel.ece == pytest.approx(ece)


def test_top_label_is_the_picked_class_and_whether_it_was_right():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]], dtype=np.float32)
    conf, correct = calibration.top_label(probs, np.array([0, 1, 1]))
    np.testing.assert_allclose(conf, [0.7, 0.6, 0.5], rtol=1e-6)
    assert correct.tolist() == [1, 0, 1]


def test_per_class_groups_by_the_predicted_class_and_its_accuracy_is_the_precision():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(400, 4)) * 2
    logits[:, 3] -= 50  # class 3 is never predicted
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, 4, 400)
    rows = calibration.per_class(probs, labels)
    pred = probs.argmax(1)
    precision = mistakes.class_report(labels, pred, 4).precision
    for k in range(3):
        mine = pred == k
        assert rows[k].predicted == mine.sum()
        assert rows[k].accuracy == pytest.approx(precision[k])
        assert rows[k].mean_confidence == pytest.approx(probs[mine, k].mean())
        assert rows[k].ece == pytest.approx(calibration.reliability(probs[mine, k], (labels[mine] == k)).ece)
    assert rows[3].predicted == 0 and np.isnan(rows[3].accuracy) and np.isnan(rows[3].ece)


def test_no_pictures_is_one_clear_sentence():
    with pytest.raises(ValueError, match="^Calibration needs at least one picture with a prediction.$"):
        calibration.reliability(np.array([]), np.array([]))


def test_the_chart_table_has_one_row_a_non_empty_bin_with_its_count():
    rel = calibration.reliability(*joined(picks(0.95, 10, 8), picks(0.55, 10, 6)))
    frame = charts.reliability_frame(rel)
    assert frame["bin"].tolist() == ["50%–60%", "90%–100%"] and frame["pictures"].tolist() == [10, 10]
    spec = charts.reliability_chart(rel).to_dict()
    assert len(spec["vconcat"]) == 2  # the diagram, and the pictures per bin below it


def test_a_model_always_right_or_always_wrong_is_binned_too():
    assert calibration.reliability(np.array([1.0, 0.96]), np.array([1, 1])).ece == pytest.approx(0.02)
    wrong = calibration.reliability(np.array([0.3, 0.95]), np.array([0, 0]))
    assert wrong.ece == pytest.approx((0.3 + 0.95) / 2) and wrong.overall_accuracy == 0.0
