"""A real browser starts a short training run from the Train page and watches it learn live.

Playwright drives Debian's Chromium (/usr/bin/chromium; skipped when absent) against `streamlit run`
on a free port with an empty runs folder. Through the page only, it picks the synthetic shapes, a tiny
model and 3 epochs, presses Start, then sees the live view gain curve points on its own (the fragment
refreshes every 1.5 s; nothing is clicked) and waits for the run to finish with one point an epoch
on the validation curve.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core import runs

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[1]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
POINTS = re.compile(r"([\d,]+) training points? and ([\d,]+) validation points?")
EPOCHS = 40  # long enough to be watched on any machine; the test stops it part-way

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Chromium not installed at {CHROMIUM}"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as answer:
                if answer.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError("streamlit did not answer its health check in time")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dashboard over an empty runs folder; yields (url, runs_dir)."""
    root = tmp_path_factory.mktemp("browser-train")
    runs_dir, cache_dir = root / "runs", root / "cache"
    port = free_port()
    env = {**os.environ, "CIFAR_RUNS_DIR": str(runs_dir), "CIFAR_CACHE_DIR": str(cache_dir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(port, process)
        yield f"http://127.0.0.1:{port}", runs_dir
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def page(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        try:
            tab = browser.new_page(viewport={"width": 1600, "height": 1400})
            tab.set_default_timeout(30_000)
            yield tab
        finally:
            browser.close()


def settle(page) -> None:
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE)


def points(page) -> tuple[int, int]:
    """The live view's count of training and validation points (0, 0 before the first record)."""
    caption = page.get_by_text(POINTS)
    if not caption.count():
        return 0, 0
    train, val = POINTS.search(caption.first.inner_text()).groups()
    return int(train.replace(",", "")), int(val.replace(",", ""))


def wait_for(condition, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"condition not met within {timeout} s")


def test_start_a_run_and_watch_it_learn_live(server, page):
    url, runs_dir = server
    page.goto(url)
    page.wait_for_selector(IDLE, timeout=60_000)
    assert "No run to show yet" in page.inner_text("[data-testid='stMain']")

    # Settings, through the page only: synthetic shapes, the tiny tutorial network, many small-batch epochs.
    page.get_by_text("Synthetic shapes (tiny, for a quick try)").click()
    settle(page)
    page.locator("[data-testid='stSelectbox']").filter(has_text="Model").click()
    page.get_by_role("option", name="tutorial-cnn", exact=True).click()
    settle(page)
    for label, value in (("Epochs", EPOCHS), ("Batch size", 16)):
        box = page.get_by_label(label, exact=True)
        box.fill(str(value))
        box.press("Enter")
        settle(page)
    page.get_by_role("button", name=re.compile("Start training")).click()
    settle(page)

    # The live view follows the new run and gains points with no one clicking anything.
    (summary,) = runs.list_runs(runs_dir)
    assert (summary.model, summary.data, summary.epochs) == ("tutorial-cnn", "synthetic", EPOCHS)
    page.get_by_role("heading", name=summary.name).wait_for()
    first = wait_for(lambda: points(page)[0], timeout=60)
    more = wait_for(lambda: points(page)[0] > first and points(page)[0], timeout=60)
    assert more > first
    wait_for(lambda: points(page)[1], timeout=60)  # a validation point: an epoch has finished

    # Stop from the page: the run ends "stopped" with a checkpoint, and the chart holds what was logged.
    page.get_by_role("button", name=re.compile("Stop")).click()
    page.get_by_text(re.compile(r"Stopped after \d+ of 40 epochs")).wait_for(timeout=60_000)
    settle(page)
    run_dir = runs.run_path(runs_dir, summary.run_id)
    stopped = runs.summarize_run(run_dir)
    assert stopped.state == "stopped" and runs.checkpoint_path(run_dir, "last").exists()
    train_points, val_points = points(page)
    records = runs.read_metrics(run_dir)
    assert (train_points, val_points) == (sum(r["kind"] == "train" for r in records),
                                          sum(r["kind"] == "val" for r in records))
    assert val_points == stopped.epoch >= 1
