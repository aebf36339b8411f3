"""The dashboard's words for what core computes, checked without a browser: numbers, durations and dates
(dashboard.wording), runs told apart and listed (dashboard.run_listing), a sweep's words (dashboard.sweep_words)
and the data-source picker's checks (dashboard.source_picker)."""
from pathlib import Path

import pandas as pd
import pytest

from core.rundir.catalog import RunSummary
from core.rundir.progress import run_progress
from core.rundir.state import RunState
from dashboard import run_listing, source_picker, wording
from tests.helpers import small_sweep_results


def _summary(run_id, name, **kw):
    return RunSummary(run_id, Path("/runs") / run_id, name, kw.pop("state", "completed"), **kw)


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


def test_sweep_words_name_the_settings_and_rank_the_importances():
    from dashboard import sweep_words

    results = small_sweep_results()
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
