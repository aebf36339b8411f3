"""A real browser creates a small sweep on the Sweeps page, starts its worker and watches the trials end.

Playwright drives Debian's Chromium (/usr/bin/chromium; skipped when absent) against `streamlit run` over
an empty runs folder. Through the page only, it sets up 2 trials of the Notebook classic recipe with the
tiny tutorial network on the synthetic shapes for 2 epochs, varying the learning rate, creates the sweep
and presses Start workers: one `python -m core.sweep work` process on the CPU, started by the dashboard's
job manager. With no one clicking, the live view (a fragment refreshing every 2 s) gains the trials' rows
in its table, and each reaches completed or pruned, as the sweep's study says.
"""
from __future__ import annotations

import re

import pytest

from core.sweep import list_sweeps, read_results
from tests.browser.harness import BROWSER_MARKS, IDLE, browser_page, empty_dashboard, settle
from tests.helpers import wait_for

TRIALS = 2
ENDED = ("completed", "pruned")

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dashboard over an empty runs folder; yields (url, runs_dir). Afterwards every sweep is asked to stop,
    so a worker left by a failed test ends at its next trial."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")  # the worker inherits it: one torch thread, steadier on a shared 2-core CPU
        with empty_dashboard(tmp_path_factory.mktemp("browser-sweeps")) as (url, runs_dir):
            try:
                yield url, runs_dir
            finally:
                for sweep in list_sweeps(runs_dir):
                    if not sweep.problem:
                        sweep.request_stop()


def pick(page, label: str, option: str) -> None:
    page.locator("[data-testid='stSelectbox']").filter(has_text=label).click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


def type_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    settle(page)


def table_states(page) -> dict[int, str]:
    """Trial number -> state, as the trials table shows them (its cells' accessible text)."""
    rows = page.locator("[data-testid='stDataFrame'] [role='row']")
    states = {}
    for k in range(1, rows.count()):  # row 0 holds the headers
        cells = rows.nth(k).locator("[role='gridcell']")
        texts = cells.all_inner_texts()  # one read: the table is redrawn every 2 s
        if len(texts) >= 2 and texts[0].strip().isdigit():
            states[int(texts[0])] = texts[1]
    return states


def test_create_a_sweep_start_its_worker_and_watch_the_trials_end(server):
    url, runs_dir = server
    with browser_page(1366, 900) as page:
        page.goto(url)
        page.wait_for_selector(IDLE, timeout=180_000)
        page.locator("[data-testid='stSidebarNav'] a", has_text="Sweeps").click()
        page.get_by_text("There is no sweep yet").wait_for()
        settle(page)

        # The form is open: the tiny recipe, through the page's widgets only.
        pick(page, "Recipe", "Notebook classic")
        page.get_by_text("Synthetic shapes (tiny, for a quick try)").click()
        settle(page)
        pick(page, "Model", "tutorial-cnn")
        type_number(page, "Epochs per trial", 2)
        type_number(page, "Trials", TRIALS)
        # The learning rate's range follows the recipe: a tenth to ten times its 0.001.
        wait_for(lambda: page.get_by_label("From", exact=True).input_value() == "0.0001", timeout=30)
        assert page.get_by_label("To", exact=True).input_value() == "0.01"
        page.get_by_role("button", name=re.compile("Create sweep")).click()
        page.get_by_role("heading", name="Learning rate").wait_for()  # named after what it varies
        settle(page)
        (sweep,) = wait_for(lambda: list_sweeps(runs_dir), timeout=30)
        assert (sweep.base.model, sweep.base.data, sweep.base.epochs, sweep.trials) == \
            ("tutorial-cnn", "synthetic", 2, TRIALS)

        # One worker on this machine's CPU; the page says so, then the trials fill the table by themselves.
        page.get_by_role("button", name=re.compile("Start workers")).click()
        page.get_by_text(re.compile(r"1 worker of this sweep is training|has all its trials")).wait_for()
        shown = wait_for(lambda: (s := table_states(page)) and len(s) == TRIALS
                         and all(v in ENDED for v in s.values()) and s, timeout=240)
        results = read_results(sweep, runs_dir, with_importances=False)
        assert shown == {t.number: t.state for t in results.trials}
        page.get_by_text("The sweep has all its trials.").wait_for(timeout=30_000)
        assert page.locator("[data-testid='stMetricValue']").first.inner_text() == f"{TRIALS} of {TRIALS}"
