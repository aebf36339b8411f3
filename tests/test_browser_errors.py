"""A real browser clicks a square of the Errors page's confusion matrix and sees exactly that square's pictures.

Playwright drives Debian's Chromium (/usr/bin/chromium; skipped when absent) against `streamlit run`
on a free port, over a tiny synthetic run trained for one epoch so the matrix has mistakes. The square
is located from the chart's drawn squares (their bounding box and the number of classes), not from
fixed pixels, and its expected count is read from the saved predictions.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core import analysis, runs
from core.data import load_dataset
from tests.helpers import train_tiny_run

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[1]
PER_PAGE = 24  # dashboard.common.TILES_PER_PAGE: the chosen square must fit on one page

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
    """A trained run and a dashboard serving it; yields (url, run_dir, classes)."""
    root = tmp_path_factory.mktemp("browser")
    runs_dir, cache_dir = root / "runs", root / "cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIFAR_RUNS_DIR", str(runs_dir))
        mp.setenv("CIFAR_CACHE_DIR", str(cache_dir))
        run_dir = train_tiny_run(runs_dir, name="browser", epochs=1).run_dir
        classes = list(load_dataset("synthetic").classes)
    port = free_port()
    env = {**os.environ, "CIFAR_RUNS_DIR": str(runs_dir), "CIFAR_CACHE_DIR": str(cache_dir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=open(root / "streamlit.log", "wb"))  # noqa: SIM115
    try:
        wait_healthy(port, process)
        yield f"http://127.0.0.1:{port}", run_dir, classes
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def settle(page) -> None:
    """Wait until the script has finished its current run."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=30_000)


def pick_cell(run_dir: Path) -> tuple[int, int, int]:
    """The off-diagonal square with the most mistakes that still fits on one page of tiles."""
    preds = runs.load_predictions(run_dir, "test")
    counts = analysis.confusion_counts(preds.labels, preds.pred, preds.probs.shape[1])
    candidates = [(int(counts[t, p]), t, p) for t in range(len(counts)) for p in range(len(counts))
                  if t != p and 2 <= counts[t, p] <= PER_PAGE]
    assert candidates, f"the fixture run made no usable mistakes:\n{counts}"
    n, t, p = max(candidates)
    return t, p, n


def test_clicking_a_matrix_square_shows_exactly_its_pictures(server):
    from playwright.sync_api import sync_playwright

    url, run_dir, classes = server
    true_c, pred_c, expected = pick_cell(run_dir)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            # Open the app at its root, then follow the sidebar link, as a person would.
            page.goto(url)
            settle(page)
            page.locator("[data-testid='stSidebarNav'] a", has_text="Errors").click()
            page.wait_for_selector("[data-testid='stVegaLiteChart'] svg g.mark-rect path", timeout=60_000)
            settle(page)

            # The matrix is the first chart; its first rect layer holds the C x C squares.
            squares = page.locator("[data-testid='stVegaLiteChart']").first.locator("g.mark-rect").first
            box = squares.bounding_box()
            side_x, side_y = box["width"] / len(classes), box["height"] / len(classes)
            x = box["x"] + (pred_c + 0.5) * side_x + side_x * 0.3  # beside the number, inside the square
            y = box["y"] + (true_c + 0.5) * side_y
            start = time.monotonic()
            page.mouse.click(x, y)
            wanted = f"{expected} pictures, the most confident prediction first."
            page.get_by_text(wanted).wait_for(timeout=30_000)
            # The tiles arrive after the heading within the same rerun: wait for them, then for the end.
            page.wait_for_function(
                "n => document.querySelectorAll(\"[data-testid='stImage']\").length >= n", arg=expected,
                timeout=30_000)
            settle(page)
            seconds = time.monotonic() - start

            heading = f"{classes[true_c]} taken for {classes[pred_c]}"
            assert page.get_by_text(heading, exact=True).count() == 1
            images = page.locator("[data-testid='stImage']")
            captions = [images.nth(k).inner_text().strip() for k in range(images.count())]
            assert len(captions) == expected
            prefix = f"True: {classes[true_c]} · Predicted: {classes[pred_c]} ·"
            assert all(c.startswith(prefix) for c in captions), captions
            print(f"click -> {expected} pictures shown in {seconds:.2f} s")
        finally:
            browser.close()
