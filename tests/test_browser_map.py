"""A real browser drags a box on the Map page and sees exactly the pictures inside it.

Playwright drives Debian's Chromium (/usr/bin/chromium; skipped when absent) against `streamlit run`
over a tiny synthetic run whose engine saved its feature map. The map has no axes, so the expected
count is taken from the drawn dots themselves: each dot's position in the plot frame (its SVG
transform), counted inside the dragged box.
"""
from __future__ import annotations

import re

import pytest

from tests.browser import BROWSER_MARKS, browser_page, dashboard, settle
from tests.helpers import one_thread, train_tiny_run

pytestmark = BROWSER_MARKS
HEADING = re.compile(r"(\d+) pictures inside the box, (\d+) of them mistakes\.")
DOTS = "[data-testid='stVegaLiteChart'] svg g.mark-symbol path"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-map")
    runs_dir, cache_dir = root / "runs", root / "cache"
    with one_thread(), pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIFAR_RUNS_DIR", str(runs_dir))
        mp.setenv("CIFAR_CACHE_DIR", str(cache_dir))
        train_tiny_run(runs_dir, name="map", epochs=1, feature_map=True)
    with dashboard(runs_dir, cache_dir, root / "streamlit.log") as url:
        yield url


def test_dragging_a_box_on_the_map_shows_exactly_the_pictures_inside(server):
    with browser_page(1600, 1400) as page:
        page.goto(server)
        settle(page)
        page.locator("[data-testid='stSidebarNav'] a", has_text="Map").click()
        page.wait_for_selector(DOTS, timeout=60_000)
        settle(page)
        frame = page.locator("[data-testid='stVegaLiteChart']").first.locator("path.background").first.bounding_box()
        # From a quarter in to the middle of the plot, both ways: a box holding some of the dots.
        x0, y0 = frame["x"] + 0.2 * frame["width"], frame["y"] + 0.2 * frame["height"]
        x1, y1 = frame["x"] + 0.6 * frame["width"], frame["y"] + 0.6 * frame["height"]
        # Each dot's centre relative to the plot frame, before the drag (the box then fades nothing out).
        centres = page.eval_on_selector_all(DOTS, "els => els.map(e => e.getAttribute('transform'))")
        points = [tuple(float(v) for v in re.findall(r"-?[\d.]+", t)[:2]) for t in centres]
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x1, y1, steps=12)
        page.mouse.up()
        heading = page.get_by_text(HEADING)
        heading.wait_for(timeout=30_000)
        settle(page)
        n = int(HEADING.search(heading.inner_text()).group(1))

        def inside(margin: float) -> int:  # a dot on the edge may round either way
            lo_x, hi_x = x0 - frame["x"] + margin, x1 - frame["x"] - margin
            lo_y, hi_y = y0 - frame["y"] + margin, y1 - frame["y"] - margin
            return sum(lo_x <= x <= hi_x and lo_y <= y <= hi_y for x, y in points)
        assert 0 < inside(1.0) <= n <= inside(-1.0)
        page.wait_for_function("n => document.querySelectorAll(\".st-key-map_picked [data-testid='stImage']\")"
                               ".length >= n", arg=min(n, 24), timeout=30_000)
        assert page.locator(".st-key-map_picked [data-testid='stImage']").count() == min(n, 24)
