"""A real browser clicks a square of the Errors page's confusion matrix and sees exactly that square's pictures;
on a 1366x768 screen the first of them is in view without scrolling, after a pair button's click too.

Playwright drives Debian's Chromium (/usr/bin/chromium; skipped when absent) against `streamlit run`
on a free port, over a tiny synthetic run trained for one epoch so the matrix has mistakes. The square
is located from the chart's drawn squares (their bounding box and the number of classes), not from
fixed pixels, and its expected count is read from the saved predictions.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from core.analysis import mistakes
from core.data import load_dataset
from core.rundir import predictions
from tests.browser.harness import BROWSER_MARKS, browser_page, settle, tiny_run_dashboard

PER_PAGE = 24  # dashboard.tiles.TILES_PER_PAGE: the chosen square must fit on one page
LAPTOP = (1366, 768)  # a common laptop screen: the chosen square's first picture must be in view on it

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A trained run and a dashboard serving it; yields (url, run_dir, classes)."""
    with tiny_run_dashboard(tmp_path_factory.mktemp("browser"), "browser", epochs=1) as (url, run_dir):
        yield url, run_dir, list(load_dataset("synthetic").classes)


def pick_cell(run_dir: Path) -> tuple[int, int, int]:
    """The off-diagonal square with the most mistakes that still fits on one page of tiles."""
    preds = predictions.load_predictions(run_dir, "test")
    counts = mistakes.confusion_counts(preds.labels, preds.pred, preds.probs.shape[1])
    candidates = [(int(counts[t, p]), t, p) for t in range(len(counts)) for p in range(len(counts))
                  if t != p and 2 <= counts[t, p] <= PER_PAGE]
    assert candidates, f"the fixture run made no usable mistakes:\n{counts}"
    n, t, p = max(candidates)
    return t, p, n


def open_errors_page(page, url: str) -> None:
    """Open the app at its root, then follow the sidebar link, as a person would."""
    page.goto(url)
    settle(page)
    page.locator("[data-testid='stSidebarNav'] a", has_text="Errors").click()
    page.wait_for_selector("[data-testid='stVegaLiteChart'] svg g.mark-rect path", timeout=60_000)
    settle(page)


def click_square(page, true_c: int, pred_c: int, n_classes: int) -> None:
    """A mouse click inside square (true_c, pred_c), beside its number, found from the drawn squares' box."""
    # The matrix is the first chart; its first rect layer holds the C x C squares.
    squares = page.locator("[data-testid='stVegaLiteChart']").first.locator("g.mark-rect").first
    box = squares.bounding_box()
    side_x, side_y = box["width"] / n_classes, box["height"] / n_classes
    page.mouse.click(box["x"] + (pred_c + 0.8) * side_x, box["y"] + (true_c + 0.5) * side_y)


def wait_for_square(page, true_name: str, pred_name: str) -> None:
    """Wait until the chosen square's heading and its pictures are drawn and the app is idle."""
    page.get_by_text(f"{true_name} taken for {pred_name}", exact=True).wait_for(timeout=30_000)
    prefix = f"True: {true_name} · Predicted: {pred_name} ·"
    page.wait_for_function(
        "prefix => { const first = document.querySelector(\"[data-testid='stImage']\");"
        " return first !== null && first.innerText.trim().startsWith(prefix); }", arg=prefix, timeout=30_000)
    settle(page)


def first_picture_in_view(page) -> dict:
    """Where the first picture is, the viewport, both scroll positions and whether the picture is on top there."""
    return page.evaluate("""() => {
        const img = document.querySelector("[data-testid='stImage'] img");
        const box = img.getBoundingClientRect();
        const seen = document.elementFromPoint((box.left + box.right) / 2, (box.top + box.bottom) / 2);
        return {top: box.top, bottom: box.bottom, left: box.left, right: box.right,
                width: innerWidth, height: innerHeight, window_scroll: window.scrollY,
                main_scroll: document.querySelector("[data-testid='stMain']").scrollTop,
                on_top: seen !== null && (seen === img || img.contains(seen))};
    }""")


def assert_in_view(where: dict) -> None:
    # The page scrolls inside stMain, not the window: both must still be at the top.
    assert where["window_scroll"] == 0 and where["main_scroll"] == 0, where
    assert 0 <= where["top"] < where["bottom"] <= where["height"], where
    assert 0 <= where["left"] < where["right"] <= where["width"], where
    assert where["on_top"], f"something covers the first picture: {where}"


def test_clicking_a_matrix_square_shows_exactly_its_pictures(server):
    url, run_dir, classes = server
    true_c, pred_c, expected = pick_cell(run_dir)
    with browser_page(1600, 1200) as page:
        open_errors_page(page, url)
        start = time.monotonic()
        click_square(page, true_c, pred_c, len(classes))
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



def test_at_1366x768_the_pictures_of_a_clicked_square_or_pair_are_in_view_without_scrolling(server):
    url, run_dir, classes = server
    preds = predictions.load_predictions(run_dir, "test")
    counts = mistakes.confusion_counts(preds.labels, preds.pred, len(classes))
    off_diagonal = counts - np.diag(np.diag(counts))
    true_c, pred_c = np.unravel_index(off_diagonal.argmax(), counts.shape)  # the worst square: may need pages
    other = next((t, p) for pair in mistakes.confused_pairs(counts, 8)
                 for t, p in ((pair.a, pair.b), (pair.b, pair.a)) if counts[t, p] and (t, p) != (true_c, pred_c))
    with browser_page(*LAPTOP) as page:
        open_errors_page(page, url)
        click_square(page, true_c, pred_c, len(classes))
        wait_for_square(page, classes[true_c], classes[pred_c])
        assert_in_view(first_picture_in_view(page))

        # The ranked pairs are folded into a menu above the pictures; a direction's button shows its square.
        page.get_by_role("button", name="Most mixed-up pairs").click()
        t, p = other
        page.get_by_role("button", name=f"{classes[t]} → {classes[p]}: {counts[t, p]}", exact=True).click()
        wait_for_square(page, classes[t], classes[p])
        assert_in_view(first_picture_in_view(page))
