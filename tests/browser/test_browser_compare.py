"""A real browser clicks a square of the Compare page's difference matrix and sees exactly its flipped pictures.

Playwright drives Debian's Chromium (/usr/bin/chromium; skipped when absent) against `streamlit run`.
The two runs are written with the engine's own writer (predictions.save_test_predictions) over the
synthetic test set with planted mistakes, so every flip is known and no training is needed: run A calls
the 1st to 5th red squares "orange-disc", run B the 4th to 10th. Square (red-square, orange-disc) then
holds 5 pictures right in A and wrong in B (the 6th to 10th) and 3 the other way round (the 1st to 3rd),
and its difference is B's 7 minus A's 5.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from core.data import load_dataset
from core.rundir import lifecycle, predictions
from tests.browser.harness import BROWSER_MARKS, browser_page, dashboard, settle
from tests.helpers import tiny_config

pytestmark = BROWSER_MARKS

WRONG_IN = {"run A": range(0, 5), "run B": range(3, 10)}  # positions among class 0's test pictures
FLIPS = {"Right in A, wrong in B": 5, "Wrong in A, right in B": 3}  # pictures 5-9 and 0-2


def planted_run(runs_dir: Path, name: str) -> Path:
    """A completed run whose test answers are all right but for class 0's pictures in WRONG_IN[name]."""
    test = load_dataset("synthetic").test
    path = lifecycle.create_run(runs_dir, tiny_config().to_dict(), name=name, state="completed")
    pred = test.labels.copy()
    pred[np.flatnonzero(test.labels == 0)[list(WRONG_IN[name])]] = 1
    probs = np.full((len(pred), 10), 0.02, dtype=np.float32)  # (N, C)
    probs[np.arange(len(pred)), pred] = 0.82
    predictions.save_test_predictions(path, test.labels, probs, np.zeros(len(pred), np.float32),
                                      np.arange(len(pred)))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-compare")
    runs_dir, cache_dir = root / "runs", root / "cache"
    planted_run(runs_dir, "run B")
    time.sleep(0.01)  # newest first: the sidebar starts on run A
    planted_run(runs_dir, "run A")
    with dashboard(runs_dir, cache_dir, root / "streamlit.log") as url:
        yield url, list(load_dataset("synthetic").classes)


def test_clicking_a_difference_square_shows_its_flipped_pictures(server):
    url, classes = server
    with browser_page(1600, 1400) as page:
        page.goto(url)
        settle(page)
        page.locator("[data-testid='stSidebarNav'] a", has_text="Compare").click()
        page.wait_for_selector("[data-testid='stVegaLiteChart'] svg g.mark-rect path", timeout=60_000)
        settle(page)
        assert page.get_by_text("+2", exact=True).count() == 1  # B's 7 minus A's 5 on square (0, 1)

        squares = page.locator("[data-testid='stVegaLiteChart']").first.locator("g.mark-rect").first
        box = squares.bounding_box()
        side_x, side_y = box["width"] / len(classes), box["height"] / len(classes)
        page.mouse.click(box["x"] + 1.8 * side_x, box["y"] + 0.5 * side_y)  # row 0, column 1, beside the number
        heading = f"{classes[0]} taken for {classes[1]}: flipped pictures"
        page.get_by_text(heading, exact=True).wait_for(timeout=30_000)
        settle(page)

        for label, expected in FLIPS.items():
            page.get_by_role("tab", name=f"{label}: {expected}").click()
            settle(page)
            visible = page.locator("[data-testid='stImage']:visible")
            captions = [visible.nth(k).inner_text().strip() for k in range(visible.count())]
            assert len(captions) == expected, captions
            right, wrong = (classes[0], classes[1]) if label.startswith("Right in A") else (classes[1], classes[0])
            assert all(c.startswith(f"True: {classes[0]} · A: {right} (82%) · B: {wrong} (82%)") for c in captions)
