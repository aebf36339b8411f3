"""What the Train, Runs, Data and Sweeps pages show, checked without a browser: the numbers core computes
(core.analysis.curves, core.rundir.progress, core.analysis.mistakes.tally, core.data.per_class,
core.sweep.points) and the dashboard's words for them (dashboard.wording, dashboard.run_listing,
dashboard.sweep_words)."""
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.analysis import curves, mistakes
from core.rundir.progress import Progress, run_progress
from core.data import per_class
from core.rundir.catalog import RunSummary
from core.rundir.state import RunState
from dashboard import run_listing, source_picker, wording

METRICS = [
    {"kind": "train", "epoch": 0.5, "step": 2, "loss": 2.0, "acc": 0.2, "lr": 0.1, "time": 1.0},
    {"kind": "train", "epoch": 1.0, "step": 4, "loss": 1.0, "acc": 0.5, "lr": 0.05, "time": 2.0},
    {"kind": "val", "epoch": 1, "step": 4, "val_loss": 1.2, "val_acc": 0.6, "seconds": 3.0, "images_per_s": 10.0,
     "time": 2.1},
    {"kind": "train", "epoch": 1.5, "step": 6, "loss": 0.5, "acc": 0.8, "lr": 0.01, "time": 3.0},
    {"kind": "val", "epoch": 2, "step": 8, "val_loss": 0.9, "val_acc": 0.7, "seconds": 3.0, "images_per_s": 10.0,
     "time": 4.0},
    {"kind": "test", "epoch": 2, "step": 8, "test_loss": 0.95, "test_acc": 0.68, "time": 4.5},
]


@pytest.mark.parametrize("n, text", [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"),
                                     (13, "13th"), (21, "21st"), (22, "22nd"), (101, "101st"), (111, "111th")])
def test_ordinal(n, text):
    assert wording.ordinal(n) == text


def test_queue_text():
    assert wording.queue_text(2) == "Waiting: 2nd in line"
    assert wording.queue_text(1) == "Waiting: 1st in line"
    assert wording.queue_text(0) == "Training now."


@pytest.mark.parametrize("seconds, text", [(None, ""), (float("nan"), ""), (-1, ""), (0, "0 s"), (44.6, "45 s"),
                                           (185, "3 min 05 s"), (7620, "2 h 07 min")])
def test_format_duration(seconds, text):
    assert wording.format_duration(seconds) == text


def test_plural():
    assert wording.plural(1, "epoch") == "1 epoch" and wording.plural(0, "point") == "0 points"
    assert wording.plural(1200, "point") == "1,200 points"


def test_change_text():
    assert wording.change_text(61, 75, 2) == "down from 75 after epoch 2"
    assert wording.change_text(80, 1200, 3) == "down from 1,200 after epoch 3"
    assert wording.change_text(9, 4, 1) == "up from 4 after epoch 1"
    assert wording.change_text(5, 5, 7) == "the same as after epoch 7"


def test_format_count():
    assert wording.format_count(62006) == "62,006"
    assert wording.format_count(1_234_567) == "1.2 million"


def test_ema_smooth_matches_tensorboard():
    values = [1.0, 2.0, 3.0]
    w = 0.5
    # by hand: last = 0.5, 1.25, 2.125; debias 0.5, 0.75, 0.875
    assert curves.ema_smooth(values, w) == pytest.approx([1.0, 1.25 / 0.75, 2.125 / 0.875])
    assert curves.ema_smooth(values, 0.0) == pytest.approx(values)
    constant = curves.ema_smooth([3.0] * 20, 0.9)
    assert constant == pytest.approx([3.0] * 20), "debiasing keeps a constant curve where it is"
    with pytest.raises(ValueError):
        curves.ema_smooth(values, 1.0)


def test_ema_smooth_passes_non_finite_values_through():
    out = curves.ema_smooth([1.0, float("nan"), 1.0], 0.9)
    assert out[0] == 1.0 and np.isnan(out[1]) and out[2] == pytest.approx(1.0)
    assert len(curves.ema_smooth([], 0.6)) == 0


def test_frames_and_latest_values():
    train, val = curves.train_frame(METRICS), curves.val_frame(METRICS)
    assert list(train["step"]) == [2, 4, 6] and list(val["val_acc"]) == [0.6, 0.7]
    assert curves.current_lr(METRICS) == 0.01
    assert curves.latest(METRICS, "val", "val_acc") == 0.7
    assert curves.latest([], "val", "val_acc") is None and curves.current_lr([]) is None


def test_live_curves_has_raw_smoothed_and_validation_series():
    lines = curves.live_curves(METRICS, smoothing=0.5)
    loss = lines[lines.metric == "loss"]
    raw = loss[(loss.split == "training") & (loss.kind == "raw")]
    smooth = loss[(loss.split == "training") & (loss.kind == "curve")]
    val = loss[loss.split == "validation"]
    assert list(raw.value) == [2.0, 1.0, 0.5]
    assert list(smooth.value) == pytest.approx(list(curves.ema_smooth([2.0, 1.0, 0.5], 0.5)))
    assert list(val.epoch) == [1, 2] and list(val.value) == [1.2, 0.9]
    acc = lines[(lines.metric == "accuracy") & (lines.split == "validation")]
    assert list(acc.value) == [0.6, 0.7]
    assert curves.live_curves([]).empty


def test_overlay_curves_labels_each_run():
    per_epoch, per_step = curves.overlay_curves({"a": METRICS, "b": METRICS[:3]})
    assert list(per_epoch[per_epoch.run == "a"].val_acc) == [0.6, 0.7]
    assert list(per_epoch[per_epoch.run == "b"].epoch) == [1]
    assert list(per_step[per_step.run == "b"].loss) == [2.0, 1.0]
    empty_epoch, empty_step = curves.overlay_curves({})
    assert empty_epoch.empty and empty_step.empty


def test_metrics_csv_round_trips():
    table = pd.read_csv(io.StringIO(curves.metrics_csv(METRICS)))
    assert list(table["kind"]) == [r["kind"] for r in METRICS]
    assert table.loc[table.kind == "test", "test_acc"].item() == 0.68
    assert table.columns[0] == "kind"


def _summary(run_id, name, **kw):
    return RunSummary(run_id, Path("/runs") / run_id, name, kw.pop("state", "completed"), **kw)


def test_runs_table_keeps_the_numbers_and_shows_damage():
    rows = [_summary("r1", "first", model="resnet20", data="cifar10", epoch=3, epochs=5, best_val_acc=0.81,
                     test_acc=0.8, duration_s=65, device="cpu", created_at=1.7e9),
            _summary("r2", "broken", state="damaged", error="status.json is missing or unreadable.")]
    table = run_listing.runs_table(rows)
    assert list(table.columns) == run_listing.RUNS_COLUMNS
    first = table.iloc[0]
    assert (first["Best val. accuracy"], first["Test accuracy"], first["Epochs done"], first["Epochs planned"]) == \
        (0.81, 0.8, 3, 5)
    assert first["Data"] == "CIFAR-10" and first["Duration"] == "1 min 05 s"
    broken = table.iloc[1]
    assert broken["State"] == "damaged" and broken["Problem"].startswith("status.json")
    assert pd.isna(broken["Test accuracy"]) and pd.isna(broken["Epochs planned"])


def test_unique_labels_add_the_creation_time_only_on_clashes():
    nov_24 = 1764001800.0  # 2025-11-24 16:30 UTC
    labels = run_listing.unique_labels([_summary("a", "x", created_at=nov_24), _summary("b", "x", created_at=nov_24 + 3600),
                                    _summary("c", "y", created_at=nov_24)])
    assert labels == {"a": "x · 24 Nov 16:30", "b": "x · 24 Nov 17:30", "c": "y"}


def test_unique_labels_fall_back_to_the_id_in_the_same_minute_or_without_a_time():
    labels = run_listing.unique_labels([_summary("a", "x", created_at=1764001800.0),
                                    _summary("b", "x", created_at=1764001810.0), _summary("c", "x")])
    assert labels == {"a": "x · 24 Nov 16:30 · a", "b": "x · 24 Nov 16:30 · b", "c": "x · c"}


def test_run_labels_add_the_state():
    labels = run_listing.run_labels([_summary("a", "x", state="running"), _summary("b", "y")])
    assert labels == {"a": "x · running", "b": "y · completed"}


def test_progress_numbers():
    status = {"progress": 0.25, "epoch": 1, "epochs": 4, "step": 10, "total_steps": 40, "eta_seconds": 90}
    assert run_progress(status, "running") == Progress("running", 0.25, 2, 4, 10, 40, 90.0)  # epoch 2 under way
    assert run_progress({**status, "progress": 0.99}, "completed").fraction == 1.0
    assert run_progress(status, "stopped") == Progress("stopped", 0.25, 1, 4, 10, 40, None)  # no time left to wait
    assert run_progress({"progress": 7}, "running").fraction == 1.0 and run_progress({}, "queued").fraction == 0.0


def test_progress_line():
    status = {"progress": 0.25, "epoch": 1, "epochs": 4, "step": 10, "total_steps": 40, "eta_seconds": 90}
    assert wording.progress_line(run_progress(status, "running")) == \
        "Epoch 2 of 4 · step 10 of 40 · about 1 min 30 s left"
    assert wording.progress_line(run_progress({**status, "progress": 1.0}, "completed")) == "Finished: 4 epochs."
    assert wording.progress_line(run_progress(status, "stopped")) == "Epoch 1 of 4 · step 10 of 40"
    assert wording.progress_line(run_progress({"epochs": 2, "step": 3}, "running")) == "Epoch 1 of 2 · step 3"
    assert wording.progress_line(run_progress({}, "queued")) == "Not started yet."


def test_no_test_results_sentence_for_each_state_as_status_json_spells_it():
    sentences = {state: wording.no_predictions_message(_summary("a", "x", state=state), "test")
                 for state in ("queued", "running", "failed", "stopped", "pruned", "interrupted", "completed")}
    assert sentences["stopped"].startswith("This run was stopped before its final test")
    assert sentences["completed"] == wording.NO_TEST_RESULTS_OTHERWISE  # finished, yet its file is gone
    assert len(set(sentences.values())) == len(sentences)  # each state its own sentence
    assert set(wording.NO_TEST_RESULTS) <= set(RunState)


def test_tally_counts_right_and_wrong():
    judged = mistakes.tally(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1]))
    assert (judged.total, judged.right, judged.wrong, judged.accuracy) == (4, 2, 2, 0.5)
    assert mistakes.tally(np.array([], int), np.array([], int)).accuracy == 0.0
    with pytest.raises(ValueError):
        mistakes.tally(np.array([0, 1]), np.array([0]))


def test_class_counts_and_sampling():
    labels = np.array([0, 1, 1, 2, 2, 2])
    table = per_class.class_counts(["a", "b", "c", "d"], {"train": labels, "test": np.array([3])})
    assert list(table["train"]) == [1, 2, 3, 0] and list(table["test"]) == [0, 0, 0, 1]
    picks = per_class.sample_per_class(labels, per_class=2, seed=0)
    assert set(picks) == {0, 1, 2} and len(picks[0]) == 1 and len(picks[2]) == 2
    assert all((labels[p] == c).all() for c, p in picks.items())
    again = per_class.sample_per_class(labels, 2, 0)
    assert {c: list(p) for c, p in again.items()} == {c: list(p) for c, p in picks.items()}


def _sweep_results():
    from core.rundir.config import TrainConfig
    from core.sweep import Param, Sweep, SweepResults, TrialResult

    space = (Param("lr", 1e-4, 1e-2, log=True), Param("optimizer", choices=("adam", "sgd")))
    sweep = Sweep("s", Path("/runs/sweeps/s"), "s", TrainConfig(), space, trials=4)
    trials = [TrialResult(2, "running", None, {"lr": 0.003}, "r2", "running", 1, 3, last_value=0.4),
              TrialResult(0, "completed", 0.6, {"lr": 0.001, "optimizer": "adam"}, "r0", "completed", 3, 3),
              TrialResult(1, "failed", None, {"lr": 0.01, "optimizer": "sgd"}, "r1", "stopped", 1, 3),
              TrialResult(3, "completed", 0.5, {"lr": 0.002, "optimizer": "sgd"}, None, None, 3, 3)]
    return SweepResults(sweep, trials, {"optimizer": 0.25, "lr": 0.75})


def test_sweep_points_give_each_trial_its_accuracy_and_the_best_so_far():
    from core.sweep.points import sweep_points

    points = sweep_points(_sweep_results())
    assert list(points["trial"]) == [0, 1, 2, 3]
    assert points["accuracy"].tolist()[:1] + points["accuracy"].tolist()[2:] == [0.6, 0.4, 0.5]
    assert np.isnan(points["accuracy"][1])  # a failed trial reached nothing
    assert points["best"].tolist() == [0.6, 0.6, 0.6, 0.6] and list(points.columns[4:]) == ["lr", "optimizer"]


def test_sweep_words_name_the_settings_and_rank_the_importances():
    from dashboard import sweep_words

    results = _sweep_results()
    label, words = str.upper, lambda field, value: f"<{value}>"
    table = sweep_words.trials_table(results, label, words)
    assert list(table.columns) == ["Trial", "State", "Validation accuracy", "LR", "OPTIMIZER", "Epochs done", "Run",
                                   "Problem"]
    assert table["OPTIMIZER"][0] == "<adam>" and table["Run"][3] == wording.MISSING
    assert table["Problem"][1] == sweep_words.STOPPED_TRIAL and table["Epochs done"][0] == "3 of 3"
    assert sweep_words.best_text(results, label, words) == "Trial #0: LR 0.001, OPTIMIZER <adam>"
    assert sweep_words.describe_param(results.sweep.space[0], label, words) == "LR from 0.0001 to 0.01 (log scale)"
    ranked = sweep_words.importance_table(results.importances, label)
    assert ranked.to_dict("list") == {"setting": ["LR", "OPTIMIZER"], "share": [0.75, 0.25]}


def test_data_source_problem(tmp_path):
    assert source_picker.data_source_problem("cifar10") is None and source_picker.data_source_problem("synthetic") is None
    assert source_picker.data_source_problem(str(tmp_path)) is None
    missing = source_picker.data_source_problem(str(tmp_path / "nope"))
    assert "does not exist" in missing and "\n" not in missing
    assert source_picker.data_source_problem("  ").startswith("Type the path")


def test_resolve_source_makes_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert source_picker.resolve_source(" Synthetic ") == "synthetic" and source_picker.resolve_source("cifar10") == "cifar10"
    assert source_picker.resolve_source("pics.zip") == str(tmp_path / "pics.zip")
    assert source_picker.resolve_source("~/x") == str(Path.home() / "x")
