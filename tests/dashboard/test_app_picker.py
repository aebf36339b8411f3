"""The sidebar's run picker (AppTest): the label a browser shows follows the run's state from rerun to
rerun, without a reload."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.rundir import lifecycle
from core.rundir.config import TrainConfig
from dashboard.state import RUN_KEY
from tests.helpers import app_runs_folder, new_session, open_view


@pytest.fixture()
def runs_dir(tmp_path_factory):
    with app_runs_folder(tmp_path_factory) as folder:
        yield folder


def running_run(folder: Path, name: str) -> Path:
    """A run on disk as "running", its process alive (this test's own), so nothing reads it as interrupted."""
    path = lifecycle.create_run(folder, TrainConfig().to_dict(), name=name)
    lifecycle.update_status(path, state="running", pid=os.getpid())
    return path


class Browser:
    """The picker's label as a browser shows it: a selectbox's browser keeps the label it last showed and
    takes a new one only when the server sets the value (`set_value`), as Streamlit's frontend does."""

    def __init__(self, at: AppTest):
        self.at, self.label = at, None

    def run(self) -> str:
        self.at.run()
        assert not self.at.exception, self.at.exception
        picker = self.at.selectbox(key=RUN_KEY)
        if self.label is None or picker.proto.set_value:
            self.label = picker.proto.raw_value if picker.proto.set_value else picker.options[picker.index]
        return self.label


def test_the_picker_label_follows_a_run_that_finishes(runs_dir):
    path = running_run(runs_dir, "demo")
    browser = Browser(new_session())
    assert browser.run().startswith("demo · running")
    lifecycle.update_status(path, state="completed")
    assert browser.run().startswith("demo · completed")


def test_runs_named_alike_are_told_apart_by_their_creation_time(runs_dir):
    nov_24 = 1764001800.0  # 2025-11-24 16:30 UTC
    for created_at in (nov_24, nov_24 + 3600):
        path = lifecycle.create_run(runs_dir, TrainConfig().to_dict(), name="twin")
        lifecycle.update_status(path, state="completed", created_at=created_at)
    at = open_view()
    newest_first = ["twin · 24 Nov 17:30", "twin · 24 Nov 16:30"]
    assert at.selectbox(key=RUN_KEY).options == [f"{label} · completed" for label in newest_first]
    at.switch_page("views/runs.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="runs_manage").options == [f"{label} · completed" for label in newest_first]
    assert at.multiselect(key="runs_compare").options == newest_first  # the curves' legend labels
