"""Scale: 500 runs list without reading their metrics; a 10,000-step metrics file is thinned before
it is drawn. (Seconds are measured by `python -m core.bench --ui`, not asserted here.)"""
import json

import pytest

from core.analysis.curves import MAX_CURVE_POINTS, live_curves, overlay_curves, thin
from core.rundir import catalog, lifecycle
from core.rundir.config import TrainConfig
from tests.helpers import open_view

STEPS = 10_000


def long_metrics(steps: int = STEPS) -> list[dict]:
    train = [{"kind": "train", "step": s, "epoch": s / 100, "loss": 2.3 / (1 + s / 500), "acc": min(0.99, s / steps),
              "lr": 0.1} for s in range(1, steps + 1)]
    val = [{"kind": "val", "epoch": e, "step": e * 100, "val_loss": 1.0, "val_acc": 0.5} for e in range(1, 101)]
    return train + val


@pytest.fixture(scope="module")
def five_hundred_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many-runs")
    config = TrainConfig(data="synthetic").to_dict()
    for i in range(500):
        path = lifecycle.create_run(folder, config, name=f"run {i:03d}")
        lifecycle.update_status(path, state="completed", epoch=3, epochs=3, best_val_acc=i / 1000, test_acc=i / 1000)
    # The newest one has a long history, as a 10,000-step run would.
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in long_metrics()))
    return folder


def test_listing_500_runs_reads_no_metrics_file(five_hundred_runs, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the runs list must not read metrics.jsonl")

    monkeypatch.setattr(catalog, "read_metrics", refuse)
    assert len(catalog.list_runs(five_hundred_runs)) == 500


def test_runs_page_shows_all_500(five_hundred_runs, monkeypatch):
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(five_hundred_runs))
    at = open_view("views/runs.py")
    table = at.dataframe[0].value
    assert len(table) == 500
    assert sorted(table["Name"]) == [f"run {i:03d}" for i in range(500)]


def test_a_10000_step_history_is_thinned_for_the_charts_but_keeps_its_ends():
    metrics = long_metrics()
    curves = live_curves(metrics, smoothing=0.6)
    training = curves[curves["split"] == "training"]
    per_series = training.groupby(["metric", "kind"]).size()
    assert (per_series <= MAX_CURVE_POINTS).all() and len(per_series) == 4
    assert training["step"].min() == 1 and training["step"].max() == STEPS
    assert len(curves[curves["split"] == "validation"]) == 200  # epochs are never thinned
    _, per_step = overlay_curves({"a": metrics, "b": metrics[:500]})
    assert per_step.groupby("run").size().to_dict() == {"a": MAX_CURVE_POINTS, "b": 500}


def test_thinning_keeps_short_series_whole():
    import pandas as pd
    frame = pd.DataFrame({"step": range(10)})
    assert thin(frame, 1000) is frame
    assert list(thin(frame, 4)["step"]) == [0, 3, 6, 9]
