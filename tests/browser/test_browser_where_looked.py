"""A real browser turns on "Show where it looked" for the Errors page's chosen square: every picture of the square
is redrawn coloured, the first is still in view on a 1366x768 screen, and a tile's "Why?" button
opens the maps for the true class and the predicted class side by side.

Playwright drives Debian's Chromium (/usr/bin/chromium; skipped when absent) against `streamlit run`, over a
tiny synthetic run trained for one epoch (tests/browser/test_browser_errors.py finds and clicks the square the same way).
"""
from __future__ import annotations

import pytest

from core.data import load_dataset
from dashboard import where_looked
from tests.browser.harness import BROWSER_MARKS, browser_page, settle, tiny_run_dashboard
from tests.browser.test_browser_errors import (
    LAPTOP,
    assert_in_view,
    click_square,
    first_picture_in_view,
    open_errors_page,
    pick_cell,
    wait_for_square,
)

pytestmark = BROWSER_MARKS
TILE_PICTURES = "[data-testid='stMain'] [data-testid='stImage'] img"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A trained run and a dashboard serving it; yields (url, run_dir, classes)."""
    with tiny_run_dashboard(tmp_path_factory.mktemp("browser_looked"), "looked", epochs=1) as (url, run_dir):
        yield url, run_dir, list(load_dataset("synthetic").classes)


def picture_sources(page) -> list[str]:
    return page.locator(TILE_PICTURES).evaluate_all("images => images.map(image => image.src)")


def test_the_toggle_colours_the_chosen_squares_pictures_and_compares_true_with_predicted(server):
    url, run_dir, classes = server
    true_c, pred_c, n = pick_cell(run_dir)
    with browser_page(*LAPTOP) as page:
        open_errors_page(page, url)
        click_square(page, true_c, pred_c, len(classes))
        wait_for_square(page, classes[true_c], classes[pred_c])
        plain = picture_sources(page)
        assert len(plain) == n

        page.get_by_text("Show where it looked", exact=True).click()
        menus = page.locator("[data-testid='stPopover']").filter(has_text=where_looked.POPOVER)  # one a picture
        page.wait_for_function("n => document.querySelectorAll(\"[data-testid='stPopover']\").length >= n",
                               arg=n, timeout=60_000)
        settle(page)
        coloured = picture_sources(page)
        assert len(coloured) == n and not set(coloured) & set(plain)  # every picture redrawn, coloured
        assert menus.count() == n
        assert_in_view(first_picture_in_view(page))  # the toggle's line keeps the first picture in view

        menus.first.locator("button").first.click()
        body = page.locator("[data-testid='stPopoverBody']")
        body.wait_for(timeout=30_000)
        captions = [body.locator("[data-testid='stImage']").nth(k).inner_text().strip() for k in range(2)]
        assert captions == [f"Where it looked for {classes[true_c]}", f"Where it looked for {classes[pred_c]}"]
        assert all(box["width"] > 0 for box in (body.locator("img").nth(k).bounding_box() for k in range(2)))
