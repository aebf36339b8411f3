"""In a real browser, a run named like Markdown (`![t](http://127.0.0.1:PORT/pixel.png) [click](...)`)
and class folders named like Markdown are shown as text on every page: the browser fetches nothing
from the address in the name, and no link or image made from a name is in the page.

A tiny HTTP server started here counts every request it gets; Playwright drives Debian's Chromium
(/usr/bin/chromium; skipped when absent) against `streamlit run`, and also records every request the
page itself makes, so a relative address in a class name (`pixel.png`) is caught as well.
"""
from __future__ import annotations

import http.server
import threading

import pytest

from dashboard.text import WORD_JOINER
from tests.browser.harness import BROWSER_MARKS, browser_page, dashboard, free_port, settle
from tests.dashboard.test_app_names import HOSTILE_CLASSES, make_hostile_folder
from tests.helpers import train_tiny_run

pytestmark = BROWSER_MARKS


class CountingServer(http.server.ThreadingHTTPServer):
    """Answers every GET with an empty 200 and remembers the paths asked for."""

    def __init__(self, port: int):
        self.paths: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the standard library's name)
                server.paths.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):  # keep pytest's output clean
                pass

        super().__init__(("127.0.0.1", port), Handler)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The counting server and a dashboard over one hostile-named run; yields (url, counter, run name)."""
    root = tmp_path_factory.mktemp("browser-names")
    runs_dir, cache_dir = root / "runs", root / "cache"
    counter = CountingServer(free_port())
    thread = threading.Thread(target=counter.serve_forever, daemon=True)
    thread.start()
    port = counter.server_address[1]
    name = f"![t](http://127.0.0.1:{port}/pixel.png) [click](http://127.0.0.1:{port}/phish)"
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CIFAR_RUNS_DIR", str(runs_dir))
            mp.setenv("CIFAR_CACHE_DIR", str(cache_dir))
            data = make_hostile_folder(root / "data")
            train_tiny_run(runs_dir, name=name, data=str(data), epochs=1)
        with dashboard(runs_dir, cache_dir, root / "streamlit.log") as url:
            yield url, counter, name
    finally:
        counter.shutdown()
        counter.server_close()


def visible_text(page) -> str:
    return page.inner_text("body").replace(WORD_JOINER, "")


def assert_no_link_or_image_from_names(page, port: int, title: str) -> None:
    # A heading's own anchor (href="#slug-of-its-text") stays inside the page: only other links count.
    links = page.locator(f"a[href*='phish']:not([href^='#']), a[href*='127.0.0.1:{port}']")
    images = page.locator("img[src*='pixel.png']")
    assert (links.count(), images.count()) == (0, 0), title


def test_markdown_names_are_text_on_every_page(server):
    url, counter, name = server
    port = counter.server_address[1]
    texts = {}
    with browser_page(1600, 1400) as page:
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        for title in ("Train", "Runs", "Errors", "Gallery"):
            if title == "Train":
                page.goto(url)  # the Train page: the run's name is the live view's heading
            else:
                page.locator("[data-testid='stSidebarNav'] a", has_text=title).click()
            page.get_by_role("heading", name=title, exact=True).wait_for()
            settle(page)
            if title == "Errors":  # a mixed-up pair: its heading and picture captions name two classes
                page.locator("[data-testid='stButton'] button:not([disabled])", has_text="→").first.click()
                page.get_by_text("taken for").first.wait_for()
                settle(page)
            texts[title] = visible_text(page)
            assert_no_link_or_image_from_names(page, port, title)

    assert counter.paths == []  # nothing was fetched from the address in the run's name
    assert [r for r in requests if "pixel.png" in r or "phish" in r] == []
    assert name in texts["Train"]  # the name is there, as its own characters
    for title in ("Errors", "Gallery"):  # tiles and headings name the classes, as their own characters
        assert "True: " in texts[title] and any(c in texts[title] for c in HOSTILE_CLASSES[:3]), title
