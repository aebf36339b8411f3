"""A real browser clicks a square of the Train page's live confusion matrix while the run is still training
and sees that square's pictures appear beside it, then opens that epoch on the Errors page.

Playwright drives Debian's Chromium (/usr/bin/chromium; skipped when absent) against `streamlit run` on a
free port with an empty runs folder. Through the page only, it keeps the Quick demo recipe, picks the
synthetic shapes and raises the epochs to 40 (so the run is still training when the square is clicked),
presses Start and waits for the matrix, which the live view draws after the first epoch. The square
clicked is the diagonal one with the most pictures, read from the chart's drawn numbers: a mistake
square may be empty again by the next epoch's refresh, a well-recognised class stays non-empty.
"""
from __future__ import annotations

import re
import time

import pytest

from core.data import load_dataset
from core.rundir import catalog
from dashboard.wording import plural
from tests.browser.harness import BROWSER_MARKS, IDLE, browser_page, empty_dashboard, settle

EPOCHS = 400  # far more than the test needs: the run must still be training at the click and the page switch
PER_PAGE = 24  # dashboard.tiles.TILES_PER_PAGE

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dashboard over an empty runs folder; yields (url, runs_dir)."""
    with empty_dashboard(tmp_path_factory.mktemp("browser-live")) as served:
        yield served


def start_quick_demo_on_shapes(page) -> None:
    page.get_by_text("Synthetic shapes (tiny, for a quick try)").click()
    settle(page)
    box = page.get_by_label("Epochs", exact=True)
    box.fill(str(EPOCHS))
    box.press("Enter")
    settle(page)
    page.get_by_role("button", name=re.compile("Start training")).click()


def click_square(page, matrix, true_c: int, pred_c: int, n_classes: int) -> None:
    """A mouse click inside square (true_c, pred_c), beside its number, found from the drawn squares' box."""
    box = matrix.locator("g.mark-rect.role-mark").first.bounding_box()
    side_x, side_y = box["width"] / n_classes, box["height"] / n_classes
    page.mouse.click(box["x"] + (pred_c + 0.8) * side_x, box["y"] + (true_c + 0.5) * side_y)


def click_until_shown(page, matrix, cell: tuple[int, int], n_classes: int, heading) -> int:
    """Click the square until its heading shows; returns the clicks it took."""
    timeout_error = pytest.importorskip("playwright.sync_api").TimeoutError
    for clicks in range(1, 4):
        click_square(page, matrix, *cell, n_classes)
        try:
            heading.wait_for(timeout=10_000)
            return clicks
        except timeout_error:
            pass  # a click landing while the refresh redraws the chart may be lost: try again
    pytest.fail("three clicks on the live square showed nothing")


def read_square(page, tries: int = 20) -> tuple[str, list[str]]:
    """The page's text and the pictures' captions, read in one go once a refresh has finished drawing.

    A new epoch arrives every few seconds and the live view redraws element by element, so one reading
    may catch the new epoch's count beside the previous epoch's pictures; the next settles.
    """
    for _ in range(tries):
        main, captions = page.evaluate("""() => [
            document.querySelector("[data-testid='stMain']").innerText,
            [...document.querySelectorAll("[data-testid='stImage']")].map(e => e.innerText.trim())]""")
        count = re.search(r"(\d+) pictures, the most confident", main)
        if count and int(count[1]) == len(captions):
            break
        time.sleep(0.5)
    return main, captions


def test_clicking_a_live_square_while_training_shows_its_pictures(server):
    url, runs_dir = server
    classes = list(load_dataset("synthetic").classes)
    n = len(classes)
    with browser_page(1600, 1400) as page:
        page.goto(url)
        page.wait_for_selector(IDLE, timeout=180_000)
        assert page.get_by_role("radio", name="Quick demo").is_checked()
        start_quick_demo_on_shapes(page)
        started = time.monotonic()

        # The live matrix: the chart whose marks are squares (the curves are lines), after epoch 1.
        matrix = page.locator("[data-testid='stVegaLiteChart']").filter(has=page.locator("g.mark-rect"))
        matrix.locator("g.mark-rect path").first.wait_for(timeout=180_000)
        page.get_by_text(re.compile(r"Right now it mixes up|no two classes")).wait_for(timeout=30_000)
        to_matrix = time.monotonic() - started
        (summary,) = catalog.list_runs(runs_dir)
        assert summary.state == "running" and summary.epochs == EPOCHS
        # The sidebar's run picker says what the live view beside it says (it read "queued" before the page
        # was redrawn when the run started).
        for _ in range(3):
            picked = page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox'] input").input_value()
            header = page.locator("[data-testid='stMain'] [data-testid='stCaptionContainer']").filter(
                has_text=" · on ").first.inner_text()
            assert picked.endswith("· running") and header.startswith("running ·"), (picked, header)
            page.wait_for_timeout(1600)  # the next refresh

        # The numbers drawn in the squares, row by row (true class), read from the chart itself.
        drawn = matrix.locator("g.mark-text.role-mark text")  # role-mark: the squares' numbers, not axis labels
        numbers = [int(t) for t in drawn.evaluate_all("texts => texts.map(t => t.textContent)")]
        assert len(numbers) == n * n
        k = max(range(n), key=lambda c: numbers[c * n + c])
        assert 0 < numbers[k * n + k] <= PER_PAGE
        heading = page.get_by_text(f"{classes[k]} recognised correctly", exact=True)
        clicked = time.monotonic()
        clicks = click_until_shown(page, matrix, (k, k), n, heading)
        page.wait_for_function("() => document.querySelectorAll(\"[data-testid='stImage']\").length > 0",
                               timeout=30_000)
        to_pictures = time.monotonic() - clicked

        main, captions = read_square(page)
        assert captions and all(c.startswith(f"True: {classes[k]} · Predicted: {classes[k]} ·") for c in captions)
        assert len(captions) == int(re.search(r"(\d+) pictures, the most confident", main)[1])
        picture = page.locator("[data-testid='stImage'] img").first.bounding_box()
        squares = matrix.locator("g.mark-rect.role-mark").first.bounding_box()
        assert picture["x"] > squares["x"] + squares["width"] and picture["y"] < squares["y"] + squares["height"], (
            f"the pictures are not beside the matrix: {picture} vs {squares}")
        assert catalog.summarize_run(summary.path).state == "running"  # all of it while the run trains
        print(f"Start -> clickable live matrix in {to_matrix:.1f} s; click -> {len(captions)} pictures in "
              f"{to_pictures:.2f} s ({plural(clicks, 'click')})")

        # The link under the words opens the Errors page at the epoch shown, with the same square chosen.
        page.get_by_role("link", name=re.compile(r"Open epoch \d+ on the Errors page")).click()
        page.get_by_role("heading", name="Errors", exact=True).wait_for(timeout=30_000)
        settle(page)
        assert page.get_by_role("radio", name="Validation set, after an epoch").is_checked()
        assert page.get_by_text(f"{classes[k]} recognised correctly", exact=True).count() == 1
