"""Learning-rate schedules are pure functions of the step."""
import math

import pytest

from core.rundir.config import TrainConfig
from core.training.schedules import PlateauTracker, lr_at

STEPS = 10  # steps per epoch


def rates(**kw):
    cfg = TrainConfig(epochs=10, lr=1.0, **kw)
    return [lr_at(cfg, step, STEPS) for step in range(100)]


def test_constant():
    assert set(rates(schedule="constant")) == {1.0}


def test_step_decays_every_n_epochs():
    r = rates(schedule="step", step_every=3, step_gamma=0.1)
    assert r[29] == 1.0 and r[30] == pytest.approx(0.1) and r[60] == pytest.approx(0.01)


def test_cosine_goes_from_peak_to_zero():
    r = rates(schedule="cosine")
    assert r[0] == 1.0 and r[50] == pytest.approx(0.5) and r[-1] < 0.01
    assert all(a >= b for a, b in zip(r, r[1:]))


@pytest.mark.parametrize("schedule", ["onecycle", "linear"])
def test_warmup_then_decay(schedule):
    r = rates(schedule=schedule, warmup_epochs=2.0)
    assert r[0] == pytest.approx(0.1)
    assert max(r) == pytest.approx(1.0) and r.index(max(r)) == 20
    assert all(a <= b for a, b in zip(r[:20], r[1:21]))
    assert all(a >= b for a, b in zip(r[20:], r[21:]))
    assert r[-1] < 0.05


def test_plateau_cuts_after_patience_and_restores():
    tracker = PlateauTracker(patience=2, factor=0.5)
    for loss in [1.0, 0.9, 0.95, 0.95, 0.95]:
        tracker.update(loss)
    assert tracker.scale == 0.5 and tracker.bad_epochs == 3
    copy = PlateauTracker(2, 0.5)
    copy.load(tracker.state())
    assert copy.state() == tracker.state()
    cfg = TrainConfig(schedule="plateau", lr=0.2)
    assert lr_at(cfg, 5, STEPS, plateau_scale=tracker.scale) == pytest.approx(0.1)
    assert math.isinf(PlateauTracker(1, 0.5).best)


@pytest.mark.parametrize("schedule", ["onecycle", "linear"])
def test_the_rate_starts_and_ends_at_the_configured_shares_of_the_peak(schedule):
    """airbench94's shape: 0.2x at the first step, the peak when the warm-up ends, 0.07x at the last."""
    r = rates(schedule=schedule, warmup_epochs=2.0, lr_start_fraction=0.2, lr_end_fraction=0.07)
    end = lr_at(TrainConfig(epochs=10, lr=1.0, schedule=schedule, warmup_epochs=2.0, lr_start_fraction=0.2,
                            lr_end_fraction=0.07), 100, STEPS)
    assert r[0] == pytest.approx(0.2) and r[20] == pytest.approx(1.0) and end == pytest.approx(0.07)
    assert r[10] == pytest.approx(0.6)  # half-way through the warm-up: half-way from 0.2 to 1
    assert r[-1] > 0.07 and all(a >= b for a, b in zip(r[20:], r[21:]))


def test_the_linear_shape_of_the_best_gpu_preset():
    from core.training.recipes import preset_config

    cfg = preset_config("best-gpu", epochs=10, warmup_epochs=2.3)
    per_epoch = 48
    total = cfg.epochs * per_epoch
    peak_step = math.ceil(cfg.warmup_epochs * per_epoch)
    assert lr_at(cfg, 0, per_epoch) == pytest.approx(0.2 * cfg.lr)
    assert lr_at(cfg, peak_step, per_epoch) == pytest.approx(cfg.lr, rel=0.01)
    assert lr_at(cfg, total, per_epoch) == pytest.approx(0.07 * cfg.lr)
