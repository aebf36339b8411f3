"""A real browser drags a box on the Learning dynamics page's data map and sees exactly the pictures inside.

Playwright drives Debian's Chromium (/usr/bin/chromium; skipped when absent) against `streamlit run`
over a tiny synthetic run of 3 epochs. The box is drawn in the chart's own coordinates (its plot
frame and the map's fixed axes: variability 0 to 0.5, mean confidence 0 to 1), and the expected
pictures are computed here from the saved epoch files.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from core.rundir import predictions
from tests.browser.harness import BROWSER_MARKS, browser_page, settle, tiny_run_dashboard

pytestmark = BROWSER_MARKS
HEADING = re.compile(r"(\d+) pictures inside the box \(mean confidence ([\d.]+) to ([\d.]+), "
                     r"variability ([\d.]+) to ([\d.]+)\)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A 3-epoch run and a dashboard serving it; yields (url, run_dir)."""
    with tiny_run_dashboard(tmp_path_factory.mktemp("browser-dynamics"), "dynamics", epochs=3) as (url, run_dir):
        yield url, run_dir


def confidence_and_spread(run_dir) -> tuple[np.ndarray, np.ndarray]:
    stack = [predictions.load_predictions(run_dir, "val", e) for e in predictions.val_epochs(run_dir)]
    labels = stack[0].labels
    true = np.stack([p.probs[np.arange(len(labels)), labels] for p in stack]).astype(np.float64)  # (E, N)
    return true.mean(0), true.std(0)


def test_dragging_a_box_on_the_data_map_shows_exactly_the_pictures_inside(server):
    url, run_dir = server
    with browser_page(1600, 1400) as page:
        page.goto(url)
        settle(page)
        page.locator("[data-testid='stSidebarNav'] a", has_text="Learning dynamics").click()
        page.wait_for_selector("[data-testid='stVegaLiteChart'] svg g.mark-symbol path", timeout=60_000)
        settle(page)
        # The data map is the first chart; its plot frame is the first background path.
        frame = page.locator("[data-testid='stVegaLiteChart']").first.locator("path.background").first.bounding_box()

        def at(spread: float, confidence: float) -> tuple[float, float]:
            return frame["x"] + spread / 0.5 * frame["width"], frame["y"] + (1 - confidence) * frame["height"]

        page.mouse.move(*at(0.002, 0.998))  # from the top left corner (steady and sure)
        page.mouse.down()
        page.mouse.move(*at(0.2, 0.5), steps=12)  # to where the easy-to-learn region's borders meet
        page.mouse.up()
        heading = page.get_by_text(HEADING)
        heading.wait_for(timeout=30_000)
        settle(page)
        n, c_lo, c_hi, s_lo, s_hi = HEADING.search(heading.inner_text()).groups()
        n, (c_lo, c_hi, s_lo, s_hi) = int(n), (float(v) for v in (c_lo, c_hi, s_lo, s_hi))
        # The browser sent the box in data units, each axis to its own field.
        assert abs(c_lo - 0.5) < 0.03 and abs(c_hi - 1.0) < 0.03 and s_lo < 0.03 and abs(s_hi - 0.2) < 0.03
        conf, spread = confidence_and_spread(run_dir)

        def inside(margin: float) -> int:  # the heading rounds to 2 decimals: allow half a hundredth
            return int(((conf >= c_lo + margin) & (conf <= c_hi - margin)
                        & (spread >= s_lo + margin) & (spread <= s_hi - margin)).sum())
        assert inside(0.005) <= n <= inside(-0.005) and n > 0
        picked = page.locator(".st-key-dynamics_picked [data-testid='stImage']")
        page.wait_for_function("n => document.querySelectorAll(\".st-key-dynamics_picked [data-testid='stImage']\")"
                               ".length >= n", arg=min(n, 24), timeout=30_000)
        assert picked.count() == min(n, 24)
