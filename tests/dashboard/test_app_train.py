"""Train page (AppTest): settings with plain help, presets, validation that starts nothing, starting a
run through the one job manager, and the live view of the selected run matching its files."""
from __future__ import annotations

import io
import time
import urllib.error
from dataclasses import dataclass, fields
from pathlib import Path

import pyarrow as pa
import pytest
import torch
import torchvision
from streamlit.testing.v1 import AppTest

import core.data.cache
from core.analysis.curves import current_lr, ema_smooth, latest
from core.jobs import JobManager
from core.rundir import catalog
from core.rundir.config import TrainConfig
from core.rundir.state import LIVE_STATES
from core.training.engine import start_run
from core.training.models import describe_model
from core.training.recipes import PRESETS
from dashboard.wording import format_count
from tests.helpers import RunPage, app_runs_folder, shown, tiny_config, train_tiny_run

TIMEOUT_S = 120


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    with app_runs_folder(tmp_path_factory) as folder:
        train_tiny_run(folder, name="finished run")
        yield folder


class TrainPage(RunPage):
    """The Train page in one AppTest session, looking at one run (None: the picker's default)."""

    def __init__(self, run_id: str | None = None):
        super().__init__(None, run_id)

    def run(self) -> AppTest:
        super().run()
        if "run_id" in self.at.session_state:
            self.run_id = self.at.session_state["run_id"]  # e.g. pointed at a run just started
        return self.at


def open_app(run_id: str | None = None) -> tuple[TrainPage, AppTest]:
    page = TrainPage(run_id)
    return page, page.at


def chart_frames(at: AppTest, index: int) -> list:
    """The data behind the index-th Altair chart: one DataFrame per layer."""
    proto = at.get("vega_lite_chart")[index].proto
    return [pa.ipc.open_stream(io.BytesIO(d.data.data)).read_all().to_pandas() for d in proto.datasets]


def folders(runs_dir: Path) -> set[str]:
    return {p.name for p in runs_dir.iterdir() if p.is_dir()}


def wait_until_done(runs_dir: Path, run_id: str) -> catalog.RunSummary:
    end = time.monotonic() + TIMEOUT_S
    while time.monotonic() < end:
        summary = catalog.summarize_run(catalog.run_path(runs_dir, run_id))
        if summary.state not in LIVE_STATES:
            return summary
        time.sleep(0.1)
    pytest.fail(f"run {run_id} did not finish within {TIMEOUT_S} s")


# ---------------------------------------------------------------------------------------------
# The live view of the selected run
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FinishedRun:
    summary: catalog.RunSummary
    metrics: list[dict]


def finished_run(runs_dir: Path) -> FinishedRun:
    (summary,) = [s for s in catalog.list_runs(runs_dir) if s.name == "finished run"]
    return FinishedRun(summary, catalog.read_metrics(summary.path))


def test_live_view_shows_the_selected_runs_progress_numbers_and_curves(runs_dir):
    run = finished_run(runs_dir)
    _, at = open_app(run.summary.run_id)
    assert at.subheader[-1].value == "finished run"
    assert [(p.value, p.proto.text) for p in at.progress] == [(100, "Finished: 2 epochs.")]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Test accuracy"] == f"{run.summary.test_acc:.1%}"
    assert shown["Learning rate"] == f"{current_lr(run.metrics):.3g}"
    assert shown["Validation accuracy"] == f"{latest(run.metrics, 'val', 'val_acc'):.1%}"

    train = [r for r in run.metrics if r["kind"] == "train"]
    val = [r for r in run.metrics if r["kind"] == "val"]
    raw, smooth, validation = chart_frames(at, 0)  # loss chart layers
    assert list(raw["value"]) == pytest.approx([r["loss"] for r in train])
    assert list(smooth["value"]) == pytest.approx(list(ema_smooth([r["loss"] for r in train], 0.6)))
    assert list(validation["value"]) == pytest.approx([r["val_loss"] for r in val])
    assert list(chart_frames(at, 1)[2]["value"]) == pytest.approx([r["val_acc"] for r in val])
    assert any(f"{len(train)} training points and {len(val)} validation points" in c.value for c in at.caption)
    # a finished run: no Stop, and nothing to resume
    assert at.button(key="live_stop").disabled and at.button(key="live_resume").disabled


def test_a_pruned_sweep_trial_says_it_was_pruned_and_offers_no_resume(tmp_path_factory):
    with app_runs_folder(tmp_path_factory) as folder:
        result = start_run(tiny_config(epochs=3), folder, name="lr sweep #4", on_epoch=lambda epoch, val: True)
        _, at = open_app(result.run_dir.name)
    assert any(i.value.startswith("Pruned after 1 of 3 epochs: its sweep's pruner stopped it") for i in at.info)
    assert at.button(key="live_resume").disabled and at.button(key="live_stop").disabled


def test_the_picker_defaults_to_the_newest_run(runs_dir):
    _, at = open_app()
    assert at.selectbox(key="run_id").value == catalog.list_runs(runs_dir)[0].run_id


def test_smoothing_control_changes_the_training_curve(runs_dir):
    page, at = open_app(finished_run(runs_dir).summary.run_id)
    at.slider(key="live_smoothing").set_value(0.0)
    page.run()
    raw, smooth, _ = chart_frames(at, 0)
    assert list(smooth["value"]) == pytest.approx(list(raw["value"]))


def test_log_scale_toggle_changes_the_loss_axis(runs_dir):
    page, at = open_app(finished_run(runs_dir).summary.run_id)
    assert '"type": "log"' not in at.get("vega_lite_chart")[0].proto.spec
    at.toggle(key="live_log_loss").set_value(True)
    page.run()
    assert '"type": "log"' in at.get("vega_lite_chart")[0].proto.spec


def test_a_failed_run_shows_cores_one_sentence(runs_dir, tmp_path, monkeypatch):
    """CIFAR-10 chosen, not downloaded, no network: the run fails with core.data's sentence, shown as is."""
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", no_network)
    monkeypatch.setattr(core.data.cache, "DEFAULT_DATA_DIR", tmp_path / "data")
    result = start_run(tiny_config(data="cifar10"), runs_dir, name="no cifar")
    (failed,) = [s for s in catalog.list_runs(runs_dir) if s.name == "no cifar"]
    assert result.state == failed.state == "failed" and "CIFAR-10 was not found" in failed.error

    _, at = open_app(failed.run_id)
    assert [shown(e.value) for e in at.error] == [failed.error]  # shown as text: paths and <class> stay as typed


# ---------------------------------------------------------------------------------------------
# The new-run form
# ---------------------------------------------------------------------------------------------

def test_every_setting_has_a_control_with_plain_help(runs_dir):
    _, at = open_app()
    widgets = [*at.number_input, *at.selectbox, *at.toggle, *at.text_input, *at.radio, *at.slider, *at.button]
    keys = {w.key for w in widgets}
    assert {f"train_{f.name}" for f in fields(TrainConfig) if f.name != "data"} <= keys
    assert {"train_data_kind", "train_preset", "train_start", "live_stop"} <= keys
    assert len(keys & {"live_resume", "live_restart"}) == 1  # Start again replaces Resume before a first checkpoint
    missing_help = [w.key for w in widgets if not (w.help or "").strip()]
    assert missing_help == []


def test_model_choice_shows_its_description_and_size(runs_dir):
    page, at = open_app()
    at.selectbox(key="train_model").set_value("resnet20")
    page.run()
    info = describe_model("resnet20")
    expected = f"{info['description']} · {format_count(info['parameters'])} parameters"
    assert expected in [c.value for c in at.caption]


def test_a_preset_fills_the_controls(runs_dir):
    page, at = open_app()
    assert at.radio(key="train_preset").value == "quick-demo"  # the default recipe is already filled in
    assert at.selectbox(key="train_model").value == PRESETS["quick-demo"].settings["model"]
    at.radio(key="train_preset").set_value("notebook-classic")
    page.run()
    settings = PRESETS["notebook-classic"].settings
    assert at.selectbox(key="train_model").value == settings["model"] == "elu-convnet"
    assert at.number_input(key="train_epochs").value == settings["epochs"]
    assert at.number_input(key="train_batch_size").value == settings["batch_size"]
    assert at.number_input(key="train_lr").value == pytest.approx(settings["lr"])
    assert at.selectbox(key="train_optimizer").value == settings["optimizer"]
    assert PRESETS["notebook-classic"].description in [c.value for c in at.caption]


def test_a_bad_value_shows_one_sentence_and_starts_nothing(runs_dir):
    before = folders(runs_dir)
    page, at = open_app(finished_run(runs_dir).summary.run_id)  # a run without an error of its own
    at.number_input(key="train_lr").set_value(0.0)
    page.run()
    at.button(key="train_start").click()
    page.run()
    with pytest.raises(ValueError) as expected:
        TrainConfig(lr=0.0)
    assert [e.value for e in at.error] == [str(expected.value)]
    assert folders(runs_dir) == before


def test_a_missing_data_folder_shows_one_sentence_and_starts_nothing(runs_dir, tmp_path):
    before = folders(runs_dir)
    page, at = open_app(finished_run(runs_dir).summary.run_id)  # a run without an error of its own
    at.radio(key="train_data_kind").set_value("path")
    page.run()
    at.text_input(key="train_data_path").input(str(tmp_path / "no such folder"))
    at.button(key="train_start").click()
    page.run()
    assert len(at.error) == 1 and "does not exist" in at.error[0].value
    assert folders(runs_dir) == before


def test_start_queues_runs_in_turn_and_the_live_view_follows_the_new_one(runs_dir):
    before = folders(runs_dir)
    page, at = open_app()
    at.radio(key="train_data_kind").set_value("synthetic")
    # resnet20: an epoch of several seconds even on a fast machine, so the second start finds it training.
    at.selectbox(key="train_model").set_value("resnet20")
    at.number_input(key="train_epochs").set_value(1)
    at.number_input(key="train_batch_size").set_value(100)
    at.number_input(key="train_warmup_epochs").set_value(0.0)
    at.selectbox(key="train_device").set_value("cpu")
    at.text_input(key="train_name").input("from the page")
    at.button(key="train_start").click()
    page.run()
    assert not at.error, [e.value for e in at.error]
    (first,) = folders(runs_dir) - before
    assert page.run_id == first  # the picker now points at the new run
    assert at.subheader[-1].value == "from the page"

    at.text_input(key="train_name").input("second in line")
    at.button(key="train_start").click()
    page.run()
    (second,) = folders(runs_dir) - before - {first}
    assert page.run_id == second
    assert "Waiting: 1st in line" in [i.value for i in at.info]  # the first one is still training
    at.button(key="live_stop").click()  # stopping a waiting run takes it out of the queue
    page.run()
    assert second not in folders(runs_dir)

    page.run_id = first
    summary = wait_until_done(runs_dir, first)
    assert (summary.state, summary.epoch) == ("completed", 1), summary.error
    page.run()
    assert [(p.value, p.proto.text) for p in at.progress] == [(100, "Finished: 1 epoch.")]
    records = catalog.read_metrics(catalog.run_path(runs_dir, first))  # read while training, then again at the end
    # An empty layer's table comes without columns.
    assert list(chart_frames(at, 0)[0].get("step", [])) == [r["step"] for r in records if r["kind"] == "train"]


def test_all_gpus_is_offered_only_with_several_and_starts_one_run_on_every_gpu(runs_dir, monkeypatch):
    label = "All GPUs of this machine (one run)"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    page, at = open_app(finished_run(runs_dir).summary.run_id)
    assert label not in at.selectbox(key="train_device").options
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # no GPU here: the machine says it has 2
    queued = []
    monkeypatch.setattr(JobManager, "submit", lambda self, cfg, name=None, processes=1:
                        queued.append((cfg.device, processes)) or page.run_id)
    page.run()
    assert label in at.selectbox(key="train_device").options
    at.selectbox(key="train_device").set_value("all-gpus")
    at.button(key="train_start").click()
    page.run()
    assert not at.error and queued == [("cuda", 2)]  # one run of 2 processes (core/jobs/torchrun.py)
