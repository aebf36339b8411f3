"""The Calibration page ("How sure vs how right") driven by AppTest against a real tiny run of 2 epochs:
the numbers, sentence, chart and table shown equal core.analysis.calibration's on the saved files; a run made
before the page existed (no loss, no validation files) shows it and is left untouched; a run without
test results, or with a damaged one, gets one sentence."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.analysis import calibration
from core.rundir import catalog, lifecycle, predictions
from core.rundir.predictions import PredictionsError
from dashboard.wording import no_predictions_message
from tests.helpers import RunPage, app_runs_folder, chart_frame, shown, train_tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished tiny synthetic run of 2 epochs (test predictions and validation after each epoch)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a few seconds on one thread; minutes on two busy cores (see conftest)
    try:
        with app_runs_folder(tmp_path_factory) as folder:
            yield train_tiny_run(folder, name="calibrated", epochs=2).run_dir
    finally:
        torch.set_num_threads(threads)


def copy_run(run: Path, suffix: str) -> Path:
    return Path(shutil.copytree(run, run.parent / f"{run.name}-{suffix}"))


class CalibrationPage(RunPage):
    """One AppTest session on the Calibration page looking at one run."""

    def __init__(self, run: Path):
        super().__init__("views/calibration.py", run.name)

    def metrics(self) -> dict[str, str]:
        return {m.label: m.value for m in self.at.metric}

    def chart_bins(self):
        return chart_frame(self.at.get("vega_lite_chart")[0].proto)

    def table(self):
        return self.at.dataframe[0].value


def expected(preds: predictions.Predictions) -> calibration.Reliability:
    return calibration.reliability(*calibration.top_label(preds.probs, preds.labels))


def assert_shows(page: CalibrationPage, preds: predictions.Predictions, split: str) -> None:
    """Every number on the page is core's on these predictions."""
    rel = expected(preds)
    assert page.metrics() == {"Calibration error (ECE)": f"{rel.ece:.1%}",
                              "Mean confidence": f"{rel.mean_confidence:.1%}",
                              "Right": f"{rel.overall_accuracy:.1%}", "Pictures": f"{len(preds.labels):,}"}
    assert page.at.info.values == [calibration.plain_sentence(rel, split)]
    bins = page.chart_bins()
    assert bins["pictures"].tolist() == rel.count[rel.count > 0].tolist()
    np.testing.assert_allclose(bins["accuracy"], rel.accuracy[rel.count > 0])
    table = page.table()
    rows = calibration.per_class(preds.probs, preds.labels)
    assert table["Predicted as this class"].tolist() == [r.predicted for r in rows]
    np.testing.assert_allclose(table["ECE"], [r.ece for r in rows])
    np.testing.assert_allclose(table["Right"], [r.accuracy for r in rows])
    np.testing.assert_allclose(table["Mean confidence"], [r.mean_confidence for r in rows])


def test_the_test_sets_numbers_sentence_chart_and_table_are_cores(run):
    page = CalibrationPage(run)
    preds = predictions.load_predictions(run, "test")
    assert_shows(page, preds, "test")
    classes = json.loads((run / "meta.json").read_text())["classes"]
    assert page.table()["Class"].tolist() == classes
    assert page.at.title[0].value == "How sure vs how right"


def test_the_validation_set_after_a_chosen_epoch(run):
    page = CalibrationPage(run)
    page.at.radio(key="calib_split").set_value("val")
    page.run()
    assert page.at.select_slider(key="calib_epoch").value == 2  # the newest epoch first
    assert_shows(page, predictions.load_predictions(run, "val", 2), "val")
    page.at.select_slider(key="calib_epoch").set_value(1)
    page.run()
    assert_shows(page, predictions.load_predictions(run, "val", 1), "val")


def test_a_run_made_before_this_page_is_shown_and_left_as_it_was(run):
    old = copy_run(run, "old")
    preds = predictions.load_predictions(old, "test")
    for path in (old / "predictions").iterdir():
        path.unlink()
    # An older test file: no per-picture loss, float16 probabilities, no validation files at all.
    with open(old / "predictions" / "test.npz", "wb") as fh:
        np.savez(fh, labels=preds.labels, pred=preds.pred, probs=preds.probs.astype(np.float16), index=preds.index)
    before = sorted((p.relative_to(old), p.stat().st_mtime_ns) for p in old.rglob("*"))
    page = CalibrationPage(old)
    assert_shows(page, predictions.load_predictions(old, "test"), "test")
    assert sorted((p.relative_to(old), p.stat().st_mtime_ns) for p in old.rglob("*")) == before


def test_a_run_without_test_results_gets_one_sentence(run):
    stopped = copy_run(run, "stopped")
    (stopped / "predictions" / "test.npz").unlink()
    status = json.loads((stopped / "status.json").read_text())
    (stopped / "status.json").write_text(json.dumps({**status, "state": "stopped"}))
    page = CalibrationPage(stopped)
    # Its validation epochs are shown first, as on the Errors page; the test set says why it is empty.
    assert page.at.radio(key="calib_split").value == "val"
    assert_shows(page, predictions.load_predictions(stopped, "val", 2), "val")
    page.at.radio(key="calib_split").set_value("test")
    page.run()
    assert page.at.info.values == [no_predictions_message(catalog.summarize_run(stopped), "test")]
    assert "stopped before its final test" in page.at.info.values[0]
    assert not page.at.get("vega_lite_chart") and not page.at.metric and not page.at.dataframe


def test_a_run_with_no_predictions_at_all_gets_one_sentence(run):
    bare = copy_run(run, "bare")
    shutil.rmtree(bare / "predictions")
    page = CalibrationPage(bare)
    assert page.at.info.values == [no_predictions_message(catalog.summarize_run(bare), "test")]
    assert not page.at.get("vega_lite_chart") and not page.at.metric and not page.at.dataframe


def test_a_damaged_test_file_is_one_sentence(run):
    damaged = copy_run(run, "damaged")
    (damaged / "predictions" / "test.npz").write_bytes(b"not an archive")
    with pytest.raises(PredictionsError) as problem:
        predictions.load_predictions(damaged, "test")
    page = CalibrationPage(damaged)
    assert [shown(w) for w in page.at.warning.values] == [str(problem.value)]
    assert str(problem.value).startswith("predictions/test.npz is damaged:")
    assert not page.at.get("vega_lite_chart") and not page.at.metric


def test_a_training_run_says_its_test_results_come_at_the_end(run):
    config = json.loads((run / "config.json").read_text())
    training = lifecycle.create_run(run.parent, config, name="still training", state="running")
    lifecycle.update_status(training)  # a fresh heartbeat: alive, so the page refreshes itself
    page = CalibrationPage(training)
    assert page.at.info.values == [no_predictions_message(catalog.summarize_run(training), "test")]
    assert "still training" in page.at.info.values[0]
