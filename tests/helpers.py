"""Shared test helpers: real (tiny) training runs on the synthetic data, so fixtures are run folders
written by the engine itself rather than hand-made imitations."""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import torch
import torch.nn.functional as F
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest
from torch import nn

from core.rundir.config import TrainConfig
from core.training.engine import RunResult, start_run
from core.training.models import registry
from tests import REPO

APP = REPO / "dashboard" / "app.py"  # the dashboard, as `streamlit run` starts it

# A run of a few seconds on 2 CPU cores: small model, one or two epochs of the synthetic set.
TINY = dict(data="synthetic", model="tutorial-cnn", epochs=2, batch_size=100, lr=0.01, optimizer="adam",
            momentum=0.9, nesterov=False, weight_decay=0.0, schedule="constant", warmup_epochs=0.0,
            log_every=2, precision="fp32", device="cpu",
            feature_map=False)  # the map's t-SNE takes seconds: only the tests of the map ask for it


def tiny_config(**overrides) -> TrainConfig:
    return TrainConfig(**{**TINY, **overrides})


def fresh_copy(run_dir: Path, suffix: str = "-fuzz") -> Path:
    """A copy of `run_dir` beside it, replacing the copy a previous example left: a run to damage."""
    copy = run_dir.with_name(run_dir.name + suffix)
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(run_dir, copy)
    return copy


def train_tiny_run(runs_dir: Path, name: str | None = None, **overrides) -> RunResult:
    """Train a tiny synthetic run to completion into `runs_dir` and return its result."""
    result = start_run(tiny_config(**overrides), runs_dir, name=name, device=torch.device("cpu"))
    assert result.state == "completed", result.error
    return result


class NormedNet(nn.Module):
    """conv -> BN -> global max -> linear: the smallest net with norm parameters."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm(self.conv(x)))          # (B, 4, 30, 30)
        return self.head(x.amax(dim=(2, 3)))         # (B, num_classes)


def norm_groups(model: NormedNet, cfg: TrainConfig) -> list[dict]:
    """Norm layers at 4x the rate and without weight decay; the rest as configured."""
    norm = list(model.norm.parameters())
    rest = [p for p in model.parameters() if all(p is not q for q in norm)]
    return [{"params": rest}, {"params": norm, "weight_decay": 0.0, "lr_scale": 4.0}]


def register_normed_net(monkeypatch: pytest.MonkeyPatch, groups=norm_groups) -> None:
    """'normed-net' in a private copy of the registry, so other tests see no change."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_model("normed-net", "a net with norm layers", param_groups=groups)(NormedNet)


def wait_for(condition, timeout: float = 120.0, every: float = 0.05):
    """Poll `condition` until it returns something truthy and return that; fail after `timeout` s.

    Generous timeouts: the CPU may be shared, and every wait ends as soon as its condition holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"condition not met within {timeout:.0f} s")


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One torch thread and one OpenMP/BLAS thread (scikit-learn's t-SNE) for a block of a test.

    On the shared 2-core machine, two threads wait on each other's busy core: the feature map's t-SNE of
    500 points takes ~8x longer with two threads than with one under load.
    """
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def app_runs_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh runs folder and data cache, which the dashboard finds through its environment variables."""
    folder = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIFAR_RUNS_DIR", str(folder))
        mp.setenv("CIFAR_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield folder


def new_session(timeout: float = 60) -> AppTest:
    """A fresh AppTest session of the dashboard, not yet run: for a test that sets state before the first
    run or drives the session from its start. Anything else opens a page with open_view or RunPage."""
    return AppTest.from_file(str(APP), default_timeout=timeout)


class RunPage:
    """One AppTest session on one page of the dashboard, looking at one run: the page object the page tests
    build on (a subclass adds its page's readers).

    `view` is a page under dashboard/ (e.g. "views/errors.py"); None stays on the first page (Train),
    whose first run then already shows `run_id`. Before every run of the script the sidebar's picker
    (session state "run_id") is set to `run_id` and any other session `state` is set again, since AppTest
    runs a switched-to page without app.py's sidebar. Every run is checked to raise nothing.
    """

    def __init__(self, view: str | None = None, run_id: str | None = None, timeout: float = 60, **state):
        self.run_id = run_id
        self.state = state
        self.at = new_session(timeout)
        if view is not None:
            self.at.run()  # draws app.py's navigation, which switch_page needs
            assert not self.at.exception, self.at.exception
            self.at.switch_page(view)
        self.run()

    def run(self, widget_states=None):
        """Run the script again (after `widget_states`, if given: see `rerun`) on this page's run."""
        if self.run_id is not None:
            self.at.session_state["run_id"] = self.run_id
        for key, value in self.state.items():
            self.at.session_state[key] = value
        rerun(self.at, widget_states)
        return self

    def select(self, element, selection: dict) -> None:
        """What the browser sends when the user selects something in a chart or table `element`: its new
        selection, as Streamlit's on_select widget value, then a run."""
        states = self.at._tree.get_widget_states()
        states.widgets.append(WidgetState(id=element.proto.id, string_value=json.dumps({"selection": selection})))
        self.run(states)

    def text(self) -> list[str]:
        """What a reader sees of the page's markdown and captions (escapes, word joiners and bold markers gone)."""
        return [shown(m.value).replace("**", "") for m in [*self.at.markdown, *self.at.caption]]


def open_view(view: str | None = None, run_id: str | None = None, timeout: float = 60, **state) -> AppTest:
    """The dashboard in a fresh AppTest session on `view` (e.g. "views/runs.py"; None: the first page),
    looking at run `run_id` with any other session `state` set, after runs that raised nothing. Later runs
    are the caller's (the state is not set again: RunPage does that)."""
    return RunPage(view, run_id, timeout, **state).at


def rerun(at: AppTest, widget_states=None) -> AppTest:
    """Run the script again, as after a plain interaction or with `widget_states` (what the browser sends
    after a chart selection), and check it raised nothing."""
    if widget_states is None:
        at.run()
    else:
        at._run(widget_states)
    assert not at.exception, at.exception
    return at


def shown(markdown: str) -> str:
    """What a reader sees of Markdown escaped by dashboard.text.plain: backslashes and word joiners gone."""
    from dashboard.text import WORD_JOINER

    return re.sub(r"\\(.)", r"\1", markdown.replace(WORD_JOINER, ""))


def png_declaring(width: int, height: int, bits: int = 8, colour_type: int = 2) -> bytes:
    """A PNG of a few dozen bytes whose header claims width x height pixels (a decompression bomb).

    bits and colour_type as in the PNG header: 8 and 2 are 8-bit RGB, 16 and 0 16-bit grey.
    """
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, bits, colour_type, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def chart_frame(proto, dataset: int = 0) -> pd.DataFrame:
    """The data a drawn Altair chart carries (its `dataset`-th Arrow table), as AppTest receives it."""
    return pa.ipc.open_stream(io.BytesIO(proto.datasets[dataset].data.data)).read_all().to_pandas()


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "3m") -> Iterator[Path]:
    """A RAM disk of `size` mounted on `path` for the block: a disk that really fills up, or (read_only)
    one that refuses every write. Skipped with a sentence where this user may not mount (it needs root)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a {size} tmpfs here (it needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:  # lazily: a dashboard thread of the test may still hold a file there
        subprocess.run(["umount", "--lazy", str(path)], check=False)


def remount_read_only(mount_point: Path) -> None:
    """Make the tmpfs at `mount_point` read-only (as root, chmod would not stop a write); skipped where refused."""
    done = subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot remount {mount_point} read-only here: {done.stderr.strip()}")


def release_fifo_readers(fifo: Path) -> None:
    """Give any reader blocked on the FIFO `fifo` an end of file (open it for writing, then close it), so a
    test of a hang ends with a failure instead of a stuck thread."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # no reader waits on it
        return
    os.close(fd)


def small_sweep_results():
    """Four trials of a two-setting sweep: running, completed, failed, completed without a run folder."""
    from core.rundir.config import TrainConfig
    from core.sweep import Param, Sweep, SweepResults, TrialResult

    space = (Param("lr", 1e-4, 1e-2, log=True), Param("optimizer", choices=("adam", "sgd")))
    sweep = Sweep("s", Path("/runs/sweeps/s"), "s", TrainConfig(), space, trials=4)
    trials = [TrialResult(2, "running", None, {"lr": 0.003}, "r2", "running", 1, 3, last_value=0.4),
              TrialResult(0, "completed", 0.6, {"lr": 0.001, "optimizer": "adam"}, "r0", "completed", 3, 3),
              TrialResult(1, "failed", None, {"lr": 0.01, "optimizer": "sgd"}, "r1", "stopped", 1, 3),
              TrialResult(3, "completed", 0.5, {"lr": 0.002, "optimizer": "sgd"}, None, None, 3, 3)]
    return SweepResults(sweep, trials, {"optimizer": 0.25, "lr": 0.75})
