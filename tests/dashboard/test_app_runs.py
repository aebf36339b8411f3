"""Runs page (AppTest) against real run folders: the table shows what is on disk, damaged and interrupted
runs appear with their sentence, curves overlay, rename and delete (after a yes) work, a training run
cannot be deleted, and the downloads are offered."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from core.rundir import catalog, lifecycle
from core.rundir.config import TrainConfig
from tests.helpers import app_runs_folder, open_view, tiny_config, train_tiny_run


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    with app_runs_folder(tmp_path_factory) as folder:
        train_tiny_run(folder, name="alpha", epochs=1)
        train_tiny_run(folder, name="beta", epochs=2)
        # A run whose training process died: "running" on disk, its pid gone.
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        interrupted = lifecycle.create_run(folder, TrainConfig().to_dict(), name="cut short")
        lifecycle.update_status(interrupted, state="running", pid=int(dead.stdout))
        # A run whose status file was torn (a full disk, a copy cut short).
        damaged = lifecycle.create_run(folder, TrainConfig().to_dict(), name="torn")
        (damaged / "status.json").write_text("{not json")
        yield folder


def open_runs_page() -> AppTest:
    return open_view("views/runs.py")


def table(at: AppTest) -> pd.DataFrame:
    return at.dataframe[0].value


def row(at: AppTest, run_id: str) -> pd.Series:
    frame = table(at)
    return frame[frame["Run id"] == run_id].iloc[0]


def by_name(runs_dir: Path, name: str) -> catalog.RunSummary:
    (summary,) = [s for s in catalog.list_runs(runs_dir) if s.name == name]
    return summary


def same(shown, on_disk) -> bool:
    return (pd.isna(shown) and on_disk is None) or shown == pytest.approx(on_disk)


def test_the_table_shows_every_run_with_the_numbers_on_disk(runs_dir):
    at = open_runs_page()
    summaries = catalog.list_runs(runs_dir)
    assert list(table(at)["Run id"]) == [s.run_id for s in summaries]  # newest first, nothing left out
    for s in summaries:
        shown = row(at, s.run_id)
        assert (shown["Name"], shown["State"]) == (s.name, s.state)
        assert same(shown["Best val. accuracy"], s.best_val_acc) and same(shown["Test accuracy"], s.test_acc)
        assert same(shown["Epochs done"], s.epoch)
        assert same(shown["Epochs planned"], s.epochs)
    beta = by_name(runs_dir, "beta")
    status = json.loads((beta.path / "status.json").read_text())
    assert row(at, beta.run_id)["Test accuracy"] == pytest.approx(status["test_acc"])
    assert (row(at, beta.run_id)["Epochs done"], row(at, beta.run_id)["Model"]) == (2, "tutorial-cnn")


def test_missing_values_read_as_a_dash_not_none(runs_dir):
    """A run cut short has no test accuracy, duration or device: its cells show "–", never "None" or "nan"."""
    at = open_runs_page()
    assert at.dataframe[0].proto.placeholder == "–"  # what the browser writes in an empty cell
    cut_short = row(at, by_name(runs_dir, "cut short").run_id)
    assert pd.isna(cut_short["Test accuracy"])  # empty, so the placeholder is what shows
    assert (cut_short["Duration"], cut_short["Device"]) == ("–", "–")
    words = table(at).select_dtypes(exclude=["number", "datetime"]).astype(str)
    assert not words.isin(["None", "nan", "NaN", "<NA>"]).any().any()


def test_damaged_and_interrupted_runs_show_their_state_and_sentence(runs_dir):
    at = open_runs_page()
    interrupted = by_name(runs_dir, "cut short")
    assert row(at, interrupted.run_id)["State"] == "interrupted"
    assert row(at, interrupted.run_id)["Problem"] == interrupted.error and interrupted.error.endswith(".")
    torn = by_name(runs_dir, "torn")
    assert row(at, torn.run_id)["State"] == "damaged"
    assert row(at, torn.run_id)["Problem"] == torn.error == "status.json is damaged: it is not readable JSON (it may have been cut short)."


def test_chosen_runs_are_overlaid_with_their_own_numbers(runs_dir):
    at = open_runs_page()
    alpha, beta = by_name(runs_dir, "alpha"), by_name(runs_dir, "beta")
    at.multiselect(key="runs_compare").set_value([alpha.run_id, beta.run_id]).run()
    accuracy = at.get("vega_lite_chart")[0].proto
    (data,) = accuracy.datasets
    frame = pa.ipc.open_stream(io.BytesIO(data.data.data)).read_all().to_pandas()
    for summary in (alpha, beta):
        val = [r["val_acc"] for r in catalog.read_metrics(summary.path) if r["kind"] == "val"]
        assert list(frame[frame.run == summary.name].val_acc) == pytest.approx(val)
    assert len(at.get("vega_lite_chart")) == 3  # validation accuracy, validation loss, training loss


def test_rename_changes_the_shown_name(runs_dir):
    at = open_runs_page()
    alpha = by_name(runs_dir, "alpha")
    at.selectbox(key="runs_manage").set_value(alpha.run_id).run()
    at.text_input(key="runs_new_name").input("alpha, renamed")
    at.button(key="runs_rename").click().run()
    assert row(at, alpha.run_id)["Name"] == "alpha, renamed"
    assert catalog.summarize_run(alpha.path).name == "alpha, renamed"
    assert [s.value for s in at.success] == ["Renamed."]


def test_a_bad_name_is_refused_in_one_sentence(runs_dir):
    at = open_runs_page()
    at.selectbox(key="runs_manage").set_value(by_name(runs_dir, "beta").run_id).run()
    at.text_input(key="runs_new_name").input("   ")
    at.button(key="runs_rename").click().run()
    assert [e.value for e in at.error] == ["A run name needs at least one visible character."]


def test_delete_asks_first_then_removes_the_run(runs_dir):
    doomed = lifecycle.create_run(runs_dir, TrainConfig().to_dict(), name="doomed")
    lifecycle.update_status(doomed, state="failed", error="Something went wrong.")
    at = open_runs_page()
    at.selectbox(key="runs_manage").set_value(doomed.name).run()
    at.button(key="runs_delete").click().run()
    assert doomed.is_dir() and len(at.warning) == 1 and "cannot be undone" in at.warning[0].value
    at.button(key="runs_delete_cancel").click().run()
    assert doomed.is_dir() and not at.warning
    at.button(key="runs_delete").click().run()
    at.button(key="runs_delete_confirm").click().run()
    assert not doomed.exists()
    assert doomed.name not in list(table(at)["Run id"])
    assert [s.value for s in at.success] == ["Deleted."]


def test_a_training_run_cannot_be_deleted_and_core_says_why(runs_dir):
    training = lifecycle.create_run(runs_dir, TrainConfig().to_dict(), name="busy")  # this process's pid: alive
    lifecycle.update_status(training, state="running")
    at = open_runs_page()
    at.selectbox(key="runs_manage").set_value(training.name).run()
    at.button(key="runs_delete").click().run()
    at.button(key="runs_delete_confirm").click().run()
    assert [e.value for e in at.error] == [f"Run {training.name} is still training: stop it before deleting it."]
    assert training.is_dir()
    lifecycle.update_status(training, state="stopped")  # leave the folder as a finished run for later tests


def test_metrics_and_weights_can_be_downloaded(runs_dir):
    at = open_runs_page()
    beta = by_name(runs_dir, "beta")
    at.selectbox(key="runs_manage").set_value(beta.run_id).run()
    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    assert set(buttons) == {"Metrics (CSV)", "Weights (last.pt)"}
    assert not buttons["Weights (last.pt)"].disabled
    at.selectbox(key="runs_manage").set_value(by_name(runs_dir, "cut short").run_id).run()
    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    assert buttons["Weights (last.pt)"].disabled  # no checkpoint was ever written


def test_no_runs_says_where_to_start(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(tmp_path / "empty"))
    at = open_runs_page()
    assert len(at.info) == 1 and "No runs yet" in at.info[0].value


def test_deleting_a_waiting_run_takes_it_out_of_the_queue(runs_dir):
    from dashboard import state  # the page's own job manager: one per runs folder, shared by every session

    manager = state._job_manager(str(runs_dir))
    training = manager.submit(tiny_config(epochs=2, batch_size=50), name="in front")
    waiting = manager.submit(tiny_config(epochs=1), name="behind")
    try:
        deadline = time.monotonic() + 60
        while manager.position(training) != 0 and time.monotonic() < deadline:  # the worker picks it up
            time.sleep(0.02)
        assert manager.position(waiting) == 1
        at = open_runs_page()
        at.selectbox(key="runs_manage").set_value(waiting).run()
        at.button(key="runs_delete").click().run()
        at.button(key="runs_delete_confirm").click().run()
        assert manager.position(waiting) is None and not catalog.run_path(runs_dir, waiting).exists()
        assert [s.value for s in at.success] == ["Deleted."]
    finally:
        for run_id in manager.active_ids():
            manager.stop(run_id)
        manager.wait(120)
    assert catalog.summarize_run(catalog.run_path(runs_dir, training)).state in ("stopped", "completed")
