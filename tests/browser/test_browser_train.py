"""A real browser starts a training run from the Train page, watches it learn live, stops and resumes it.

Playwright drives Debian's Chromium (/usr/bin/chromium; skipped when absent) against `streamlit run`
on a free port with an empty runs folder. Through the page only, it picks the synthetic shapes, a tiny
model and 40 short epochs, presses Start, then sees the live view gain curve points on its own (the
fragment refreshes every 1.5 s; nothing is clicked), presses Stop (the run keeps a checkpoint and the
chart every logged point), then Resume (the same run carries on), then Stop again.
"""
from __future__ import annotations

import re

import pytest

from core.rundir import catalog, checkpoints
from tests.browser.harness import BROWSER_MARKS, IDLE, browser_page, empty_dashboard, settle
from tests.helpers import wait_for

POINTS = re.compile(r"([\d,]+) training points? and ([\d,]+) validation points?")
EPOCHS = 40  # long enough to be watched on any machine; the test stops it part-way

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dashboard over an empty runs folder; yields (url, runs_dir)."""
    with empty_dashboard(tmp_path_factory.mktemp("browser-train")) as served:
        yield served


@pytest.fixture
def page(server):
    with browser_page() as tab:
        yield tab


def points(page) -> tuple[int, int]:
    """The live view's count of training and validation points (0, 0 before the first record)."""
    caption = page.get_by_text(POINTS)
    if not caption.count():
        return 0, 0
    train, val = POINTS.search(caption.first.inner_text()).groups()
    return int(train.replace(",", "")), int(val.replace(",", ""))


def main(page):
    """The page's own area: Streamlit's toolbar has a Stop button of its own while the page is being redrawn
    (the live view redraws the whole page when a new epoch arrives)."""
    return page.locator("[data-testid='stMain']")


def test_start_a_run_and_watch_it_learn_live(server, page):
    url, runs_dir = server
    page.goto(url)
    page.wait_for_selector(IDLE, timeout=180_000)
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
    (summary,) = catalog.list_runs(runs_dir)
    assert (summary.model, summary.data, summary.epochs) == ("tutorial-cnn", "synthetic", EPOCHS)
    page.get_by_role("heading", name=summary.name).wait_for()
    first = wait_for(lambda: points(page)[0], timeout=180)
    more = wait_for(lambda: points(page)[0] > first and points(page)[0], timeout=180)
    assert more > first
    wait_for(lambda: points(page)[1], timeout=180)  # a validation point: an epoch has finished

    # Stop from the page: the run ends "stopped" with a checkpoint, and the chart holds what was logged.
    main(page).get_by_role("button", name=re.compile("Stop")).click()
    page.get_by_text(re.compile(r"Stopped after \d+ of 40 epochs")).wait_for(timeout=180_000)
    settle(page)
    run_dir = catalog.run_path(runs_dir, summary.run_id)
    stopped = catalog.summarize_run(run_dir)
    assert stopped.state == "stopped" and checkpoints.checkpoint_path(run_dir, "last").exists()
    train_points, val_points = points(page)
    records = catalog.read_metrics(run_dir)
    assert (train_points, val_points) == (sum(r["kind"] == "train" for r in records),
                                          sum(r["kind"] == "val" for r in records))
    assert val_points == stopped.epoch >= 1

    # Resume from the page: the same run carries on from its checkpoint (no new run), then stop it again.
    main(page).get_by_role("button", name=re.compile("Resume")).click()
    wait_for(lambda: points(page)[0] > train_points, timeout=180)
    assert [s.run_id for s in catalog.list_runs(runs_dir)] == [summary.run_id]
    assert catalog.summarize_run(run_dir).state == "running"
    main(page).get_by_role("button", name=re.compile("Stop")).click()
    page.get_by_text(re.compile(r"Stopped after \d+ of 40 epochs")).wait_for(timeout=180_000)
    records = catalog.read_metrics(run_dir)
    steps = [r["step"] for r in records if r["kind"] == "train"]
    assert steps == sorted(set(steps)) and len(steps) > train_points
