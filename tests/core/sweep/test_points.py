"""What a sweep's trials reached, as numbers (core.sweep.points)."""
import numpy as np

from tests.helpers import small_sweep_results


def test_sweep_points_give_each_trial_its_accuracy_and_the_best_so_far():
    from core.sweep.points import sweep_points

    points = sweep_points(small_sweep_results())
    assert list(points["trial"]) == [0, 1, 2, 3]
    assert points["accuracy"].tolist()[:1] + points["accuracy"].tolist()[2:] == [0.6, 0.4, 0.5]
    assert np.isnan(points["accuracy"][1])  # a failed trial reached nothing
    assert points["best"].tolist() == [0.6, 0.6, 0.6, 0.6] and list(points.columns[4:]) == ["lr", "optimizer"]
