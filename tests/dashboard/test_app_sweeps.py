"""The Sweeps page driven by AppTest: what it makes and shows equals what core.sweep has on disk.

The form makes exactly the sweep its widgets say, and a bad range is core's one sentence with nothing
made. A finished sweep, trained once for the module in this process (core.sweep.work on the synthetic
shapes with the tiny recipe of tests/helpers.py: 4 trials of 2 epochs, a few seconds), shows its trials,
best accuracy and importances as core.sweep.read_results reads them; picking a row makes its run the
sidebar's. Stop writes the stop request; Start workers asks the job manager for one worker per device
(replaced here by a recorder, so no process starts: tests/browser/test_browser_sweeps.py starts a real one).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest

from core.jobs import JobManager
from core.sweep import Param, check_space, create_sweep, list_sweeps, load_sweep, read_results, tunable_fields, work
from core.sweep.points import trial_accuracy
from core.training.device import worker_devices
from core.training.recipes import PRESETS, preset_config
from dashboard import controls, sweep_form
from dashboard.wording import MISSING, created_text
from tests.helpers import chart_frame, one_thread, open_view, rerun, shown, tiny_config

SPACE = [Param("lr", 0.003, 0.03, True), Param("optimizer", choices=("adam", "sgd"))]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A runs folder holding one sweep whose 4 trials have all ended."""
    runs_dir = tmp_path_factory.mktemp("sweeps") / "runs"
    sweep = create_sweep(runs_dir, "lr and optimiser", tiny_config(epochs=2), SPACE, 4, "random", "median")
    with one_thread():  # steadier on a shared 2-core machine
        assert work(runs_dir, sweep.sweep_id, "cpu") == 4
    return runs_dir, sweep.sweep_id


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "runs"
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(folder))
    return folder


def open_page() -> AppTest:
    return open_view("views/sweeps.py")


def fill_form(at: AppTest, low: float, high: float) -> None:
    """A small sweep of the tiny recipe: learning rate low..high on a log scale, and Adam or SGD."""
    at.radio(key="sweep_data_kind").set_value("synthetic")
    at.selectbox(key="sweep_preset").set_value("notebook-classic")
    rerun(at)
    at.selectbox(key="sweep_model").set_value("tutorial-cnn")
    at.number_input(key="sweep_epochs").set_value(2)
    at.multiselect(key="sweep_vary").set_value(["lr", "optimizer"])
    rerun(at)
    at.number_input(key="sweep_low_lr").set_value(low)
    at.number_input(key="sweep_high_lr").set_value(high)
    at.checkbox(key="sweep_log_lr").check()
    at.multiselect(key="sweep_choices_optimizer").set_value(["adam", "sgd"])
    at.text_input(key="sweep_name").input("my sweep")
    at.number_input(key="sweep_trials").set_value(5)
    at.selectbox(key="sweep_sampler").set_value("random")
    at.selectbox(key="sweep_pruner").set_value("none")
    rerun(at)


def test_without_sweeps_the_form_is_open(runs_dir):
    at = open_page()
    assert at.expander[0].label == "New sweep" and at.expander[0].proto.expanded
    assert at.button(key="sweep_create").label == "Create sweep"
    assert at.multiselect(key="sweep_vary").value == ["lr"]  # a first suggestion, with its range filled in
    assert at.number_input(key="sweep_low_lr").value < at.number_input(key="sweep_high_lr").value
    assert "There is no sweep yet" in at.info[0].value


def test_the_form_makes_exactly_the_sweep_its_widgets_say(runs_dir):
    at = open_page()
    fill_form(at, 0.001, 0.1)
    at.button(key="sweep_create").click()
    rerun(at)
    assert not at.error
    [sweep] = list_sweeps(runs_dir)
    assert sweep.space == (Param("lr", 0.001, 0.1, True), Param("optimizer", choices=("adam", "sgd")))
    assert (sweep.name, sweep.trials, sweep.sampler, sweep.pruner) == ("my sweep", 5, "random", "none")
    assert (sweep.base.data, sweep.base.model, sweep.base.epochs, sweep.base.batch_size) == \
        ("synthetic", "tutorial-cnn", 2, 250)  # the rest from the Notebook classic recipe
    assert not sweep.base.feature_map  # no trial spends its end on the test-set map
    assert at.subheader[0].value == "my sweep"  # the new sweep is the one shown
    assert any("Learning rate from 0.001 to 0.1 (log scale)" in shown(m.value) for m in at.markdown)


@pytest.mark.parametrize("low, high, sentence", [
    (0.1, 0.01, "lr's range must go from a lower to a higher value, got 0.1 to 0.01"),
    (0.01, 50.0, "lr must be greater than 0 and at most 10"),
])
def test_a_bad_range_is_one_sentence_and_makes_nothing(runs_dir, low, high, sentence):
    at = open_page()
    fill_form(at, low, high)
    at.button(key="sweep_create").click()
    rerun(at)
    assert len(at.error) == 1 and sentence in shown(at.error[0].value)
    assert list_sweeps(runs_dir) == [] and not (runs_dir / "sweeps").exists()


def finished_page(finished, monkeypatch) -> AppTest:
    runs_dir, _ = finished
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(runs_dir))
    return open_page()


def test_a_finished_sweep_shows_its_trials_best_and_importances(finished, monkeypatch):
    runs_dir, sweep_id = finished
    results = read_results(load_sweep(runs_dir, sweep_id), runs_dir)
    at = finished_page(finished, monkeypatch)

    table = at.dataframe[0].value
    trials = sorted(results.trials, key=lambda t: t.number)
    assert list(table["Trial"]) == [t.number for t in trials] == [0, 1, 2, 3]
    assert list(table["State"]) == [t.state for t in trials]
    assert set(table["State"]) <= {"completed", "pruned"}
    for shown_value, trial in zip(table["Validation accuracy"], trials):
        assert shown_value == pytest.approx(trial_accuracy(trial))
    assert list(table["Learning rate"]) == pytest.approx([t.params["lr"] for t in trials])
    assert list(table["Optimiser"]) == [controls.choice_words("optimizer", t.params["optimizer"]) for t in trials]
    assert list(table["Run"]) == [t.run_name for t in trials]

    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Trials done"] == "4 of 4"
    assert metrics["Best validation accuracy"] == f"{results.best.value:.1%}"

    importance = chart_titled(at, "Share of the differences explained")
    assert importance is not None, "the importance chart is drawn once two trials have completed"
    frame = chart_frame(importance.proto)
    assert dict(zip(frame["setting"], frame["share"])) == pytest.approx(
        {controls.label(f): share for f, share in results.importances.items()}, abs=1e-6)
    assert chart_titled(at, '"Trial"') is not None  # the best so far
    for param in SPACE:  # accuracy against each setting
        assert chart_titled(at, f'"{controls.label(param.field)}"') is not None


def chart_titled(at: AppTest, text: str):
    """The first chart whose Vega-Lite spec holds `text` (AppTest gives charts without selections no key)."""
    return next((c for c in at.get("vega_lite_chart") if text in c.proto.spec), None)


def test_picking_a_trial_makes_its_run_the_sidebars_run(finished, monkeypatch):
    runs_dir, sweep_id = finished
    at = finished_page(finished, monkeypatch)
    trial = sorted(read_results(load_sweep(runs_dir, sweep_id), runs_dir).trials, key=lambda t: t.number)[2]
    states = at._tree.get_widget_states()
    selection = {"selection": {"rows": [2], "columns": [], "cells": []}}
    states.widgets.append(WidgetState(id=at.dataframe[0].proto.id, string_value=json.dumps(selection)))
    rerun(at, states)
    assert at.session_state["run_id"] == trial.run_id
    assert at.sidebar.selectbox[0].value == trial.run_id
    links = [(link.proto.label, link.proto.page) for link in at.get("page_link")]
    assert links == [("Its mistakes", "errors"), ("All runs", "runs"), ("Its learning curves", "")]  # Train: the root


def test_stop_writes_the_stop_request_and_start_asks_for_a_worker_per_device(runs_dir, monkeypatch):
    sweep = create_sweep(runs_dir, "waiting", tiny_config(), SPACE, 3)
    started = []
    monkeypatch.setattr(JobManager, "start_sweep_workers",
                        lambda self, sweep_id, devices: started.append((sweep_id, devices)) or len(devices))
    at = open_page()
    assert "python -m core.sweep work --sweep " + sweep.sweep_id in at.code[0].value

    at.button(key="sweeps_start").click()
    rerun(at)
    assert started == [(sweep.sweep_id, worker_devices())]

    assert not sweep.stop_requested()
    at.button(key="sweeps_stop").click()
    rerun(at)
    assert sweep.stop_requested()
    assert at.button(key="sweeps_stop").disabled  # asked once


def test_damaged_trial_runs_and_sweep_files_cost_only_themselves(finished, tmp_path, monkeypatch):
    source, sweep_id = finished
    runs_dir = tmp_path / "runs"
    shutil.copytree(source, runs_dir)
    trials = sorted(read_results(load_sweep(runs_dir, sweep_id), runs_dir).trials, key=lambda t: t.number)
    (runs_dir / trials[0].run_id / "status.json").write_text("[1, 2")  # a damaged run
    shutil.rmtree(runs_dir / trials[1].run_id)  # a deleted one
    broken = runs_dir / "sweeps" / "20990101-000000-broken-0000"
    broken.mkdir()
    (broken / "sweep.json").write_text("{not json")  # a sweep folder whose file is damaged: listed last
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(runs_dir))
    at = open_page()
    created = created_text(load_sweep(runs_dir, sweep_id).created_at)
    assert at.selectbox(key="sweeps_sweep").options == [f"lr and optimiser · {created}", f"{broken.name} · cannot be used"]
    table = at.dataframe[0].value
    assert list(table["Trial"]) == [0, 1, 2, 3]  # the study keeps every trial
    assert "status.json" in table["Problem"][0]  # the damaged run's sentence
    assert table["Run"][1] == MISSING  # the deleted run


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_settings_first_range_is_accepted_for_every_recipe(preset):
    """What the form fills in when a setting is chosen is a space core accepts, around the recipe's values."""
    base = preset_config(preset, data="synthetic", val_fraction=0.1)
    for field in tunable_fields():
        param = sweep_form.default_param(field, base)
        check_space(base, [param])  # raises SweepError otherwise
        if param.choices is None:
            assert param.low < param.high
    assert sweep_form.default_param("lr", base) == Param("lr", base.lr / 10, min(base.lr * 10, 10.0), True)
