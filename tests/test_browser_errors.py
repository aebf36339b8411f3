"""A real browser clicks a square of the Errors page's confusion matrix and sees exactly that square's pictures.

Playwright drives Debian's Chromium (/usr/bin/chromium; skipped when absent) against `streamlit run`
on a free port, over a tiny synthetic run trained for one epoch so the matrix has mistakes. The square
is located from the chart's drawn squares (their bounding box and the number of classes), not from
fixed pixels, and its expected count is read from the saved predictions.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from core import analysis, predictions
from core.data import load_dataset
from tests.browser import BROWSER_MARKS, browser_page, dashboard, settle
from tests.helpers import train_tiny_run

PER_PAGE = 24  # dashboard.tiles.TILES_PER_PAGE: the chosen square must fit on one page

pytestmark = BROWSER_MARKS


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
    with dashboard(runs_dir, cache_dir, root / "streamlit.log") as url:
        yield url, run_dir, classes


def pick_cell(run_dir: Path) -> tuple[int, int, int]:
    """The off-diagonal square with the most mistakes that still fits on one page of tiles."""
    preds = predictions.load_predictions(run_dir, "test")
    counts = analysis.confusion_counts(preds.labels, preds.pred, preds.probs.shape[1])
    candidates = [(int(counts[t, p]), t, p) for t in range(len(counts)) for p in range(len(counts))
                  if t != p and 2 <= counts[t, p] <= PER_PAGE]
    assert candidates, f"the fixture run made no usable mistakes:\n{counts}"
    n, t, p = max(candidates)
    return t, p, n


def test_clicking_a_matrix_square_shows_exactly_its_pictures(server):

    url, run_dir, classes = server
    true_c, pred_c, expected = pick_cell(run_dir)
    with browser_page(1600, 1200) as page:
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

