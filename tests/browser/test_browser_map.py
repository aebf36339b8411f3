"""A real browser drags a box on the Map page and sees exactly the pictures inside it, then hovers a
mistake's dot (its picture in the tooltip) and clicks it (its look-alikes below).

Playwright drives Debian's Chromium (/usr/bin/chromium; skipped when absent) against `streamlit run`
over a tiny synthetic run whose engine saved its feature map. The map has no axes, so the expected
count is taken from the drawn dots themselves: each dot's position in the plot frame (its SVG
transform), counted inside the dragged box.
"""
from __future__ import annotations

import re

import pytest

from tests.browser.harness import BROWSER_MARKS, browser_page, settle, tiny_run_dashboard

pytestmark = BROWSER_MARKS
HEADING = re.compile(r"(\d+) pictures inside the box, (\d+) of them mistakes\.")
DOTS = "[data-testid='stVegaLiteChart'] svg g.mark-symbol path"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with tiny_run_dashboard(tmp_path_factory.mktemp("browser-map"), "map", epochs=1, feature_map=True) as (url, _):
        yield url


# The centre of the last-drawn cross (a mistake) outside `box` that is on top at its centre, in page pixels.
FREE_CROSS = """box => {
  const crosses = [...document.querySelectorAll(DOTS)].filter(p => !p.getAttribute('d').includes('A'));
  for (const p of crosses.reverse()) {
    const r = p.getBoundingClientRect(), x = r.x + r.width / 2, y = r.y + r.height / 2;
    const outside = x < box[0] || x > box[2] || y < box[1] || y > box[3];
    if (outside && document.elementFromPoint(x, y) === p) return [x, y];
  }
  return null;
}""".replace("DOTS", repr(DOTS))


def test_dragging_a_box_and_clicking_a_dot_on_the_map(server):
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
        heading_text = heading.inner_text()
        n = int(HEADING.search(heading_text).group(1))

        def inside(margin: float) -> int:  # a dot on the edge may round either way
            lo_x, hi_x = x0 - frame["x"] + margin, x1 - frame["x"] - margin
            lo_y, hi_y = y0 - frame["y"] + margin, y1 - frame["y"] - margin
            return sum(lo_x <= x <= hi_x and lo_y <= y <= hi_y for x, y in points)
        assert 0 < inside(1.0) <= n <= inside(-1.0)
        page.wait_for_function("n => document.querySelectorAll(\".st-key-map_picked [data-testid='stImage']\")"
                               ".length >= n", arg=min(n, 24), timeout=30_000)
        assert page.locator(".st-key-map_picked [data-testid='stImage']").count() == min(n, 24)

        # Hover a mistake outside the box: its picture shows in the tooltip; a click chooses it.
        spot = page.evaluate(FREE_CROSS, [x0 - 4, y0 - 4, x1 + 4, y1 + 4])
        assert spot is not None
        page.mouse.move(*spot)
        tooltip = page.locator("#vg-tooltip-element")
        tooltip.locator("img").wait_for(timeout=10_000)
        assert tooltip.locator("img").evaluate("i => i.complete && i.naturalWidth") == 64  # 32 px shown 2x
        picture = re.search(r"Picture\s+(\d+)", tooltip.inner_text()).group(1)
        page.mouse.click(*spot)
        page.wait_for_function("p => document.querySelector('.st-key-map_lookalike input').value.startsWith(p)",
                               arg=f"Picture {picture}:", timeout=30_000)  # the picker follows the click
        page.wait_for_function("() => document.querySelectorAll(\".st-key-map_lookalikes [data-testid='stImage']\")"
                               ".length === 8", timeout=30_000)
        assert page.get_by_text(HEADING).inner_text() == heading_text  # the click kept the box
