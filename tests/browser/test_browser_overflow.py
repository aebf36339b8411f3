"""The demo screen shows every word: on a laptop's 1366×768 and a desktop's 1920×1080, a real browser opens
every page of the dashboard with a trained run and fails on any text that its box cuts off (a button reading
"S…", a metric label "Validation ac…", a select box reading "Most confident mistak").

A text is cut off when the element holding it, or one of its nearest boxes, hides what overflows (overflow
hidden or clip, or an ellipsis) and the text reaches past that box's right edge. Charts (SVG), tables
(drawn on a canvas) and code blocks (which scroll) are left out: their text is laid out by other rules.
"""
from __future__ import annotations

import time

import pytest

from core.rundir import lifecycle

from tests.browser.harness import BROWSER_MARKS, IDLE, browser_page, settle, tiny_run_dashboard
from tests.helpers import one_thread, train_tiny_run

pytestmark = BROWSER_MARKS

SCREENS = {"laptop": (1366, 768), "desktop": (1920, 1080)}

SKELETONS_GONE = "() => !document.querySelector(\"[data-testid*='Skeleton']\")"
CUT_OFF_TEXTS = """() => {
  const hides = s => s.overflowX === "hidden" || s.overflowX === "clip" || s.textOverflow === "ellipsis";
  const skip = "svg, canvas, [data-testid='stDataFrame'], [data-testid='stTable'], [data-testid='stCode']";
  const cut = [];
  const cutBy = (right, from) => {  // a box among the 5 nearest that hides overflow and ends before `right`
    for (let box = from, depth = 0; box && depth < 5; depth++, box = box.parentElement)
      if (hides(getComputedStyle(box)) && right > box.getBoundingClientRect().right + 1) return true;
    return false;
  };
  for (const el of document.querySelectorAll("[data-testid='stApp'] *")) {
    if (el.closest(skip)) continue;
    const rect = el.getBoundingClientRect();
    // Not on screen, or a screen reader's 1-pixel "Skip to main content".
    if (rect.width <= 1 || rect.height <= 1) continue;
    if (el.tagName === "INPUT" && el.closest("[data-testid='stSelectbox']")) {  // a select box shows its choice here
      if (el.value && el.scrollWidth > el.clientWidth + 1) cut.push(el.value.slice(0, 60));
      continue;
    }
    for (const node of el.childNodes) {
      if (node.nodeType !== 3 || !node.textContent.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      if (cutBy(range.getBoundingClientRect().right, el)) { cut.push(node.textContent.trim().slice(0, 60)); break; }
    }
  }
  return [...new Set(cut)];
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dashboard serving two tiny trained runs under the name the Train page gives a run (its model's), so
    the run picker's label carries the date that tells them apart: "tutorial-cnn · 7 Dec 20:06 · completed"."""
    root = tmp_path_factory.mktemp("browser-overflow")
    with one_thread():
        yesterdays = train_tiny_run(root / "runs", name="tutorial-cnn").run_dir
    lifecycle.update_status(yesterdays, created_at=time.time() - 86_400)  # not the same minute as the next one
    with tiny_run_dashboard(root, "tutorial-cnn") as served:
        yield served


def page_links(page) -> list[tuple[str, str]]:
    """(title, address) of every page in the sidebar's navigation."""
    links = page.locator("[data-testid='stSidebarNav'] a")
    return [(links.nth(k).inner_text().split("\n")[-1].strip(), links.nth(k).get_attribute("href"))
            for k in range(links.count())]  # the text is the icon's name, then the title


@pytest.mark.parametrize("screen", SCREENS)
def test_no_page_cuts_off_its_words(server, screen):
    url, _ = server
    width, height = SCREENS[screen]
    with browser_page(width, height) as page:
        page.goto(url)
        page.wait_for_selector(IDLE, timeout=180_000)
        links = page_links(page)
        assert len(links) == 11, links
        cut_by_page = {}
        for title, address in links:
            page.goto(address)
            page.locator("[data-testid='stMain'] h1").first.wait_for(timeout=120_000)  # the page's own title
            settle(page)
            page.wait_for_function(SKELETONS_GONE, timeout=120_000)  # placeholders of elements still on their way
            cut = page.evaluate(CUT_OFF_TEXTS)
            if cut:
                cut_by_page[title] = cut
        assert not cut_by_page, f"cut-off words at {width}×{height}: {cut_by_page}"
