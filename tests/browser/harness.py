"""Shared machinery of the real-browser tests: the dashboard served on a free port, and Debian's
Chromium driven by Playwright with the launch flags known to work here (../shared/BROWSER-TESTS.md)."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"  # the script finished its run

# Module-level `pytestmark` for a browser test file: labelled, and skipped without Chromium.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Chromium not installed at {CHROMIUM}"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as answer:
                if answer.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError("streamlit did not answer its health check in time")


@contextlib.contextmanager
def dashboard(runs_dir: Path, cache_dir: Path, log: Path) -> Iterator[str]:
    """`streamlit run dashboard/app.py` over `runs_dir`; yields its URL, stops it afterwards."""
    port = free_port()
    env = {**os.environ, "CIFAR_RUNS_DIR": str(runs_dir), "CIFAR_CACHE_DIR": str(cache_dir)}
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.headless", "true",
             "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
        try:
            wait_healthy(port, process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def empty_dashboard(root: Path) -> Iterator[tuple[str, Path]]:
    """A dashboard over an empty runs folder under `root`; yields (url, runs_dir)."""
    with dashboard(root / "runs", root / "cache", root / "streamlit.log") as url:
        yield url, root / "runs"


@contextlib.contextmanager
def tiny_run_dashboard(root: Path, name: str, **overrides) -> Iterator[tuple[str, Path]]:
    """A tiny synthetic run trained (one thread) into `root`/runs, and a dashboard serving it; yields (url, run_dir)."""
    from tests.helpers import (  # late: helpers imports torch, which the rest here does not need
        one_thread,
        train_tiny_run,
    )

    runs_dir, cache_dir = root / "runs", root / "cache"
    with one_thread(), pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIFAR_RUNS_DIR", str(runs_dir))
        mp.setenv("CIFAR_CACHE_DIR", str(cache_dir))
        run_dir = train_tiny_run(runs_dir, name=name, **overrides).run_dir
    with dashboard(runs_dir, cache_dir, root / "streamlit.log") as url:
        yield url, run_dir


@contextlib.contextmanager
def browser_page(width: int = 1600, height: int = 1400):
    """A fresh Chromium tab (Playwright's sync API)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": width, "height": height})
            tab.set_default_timeout(30_000)
            yield tab
        finally:
            browser.close()


def settle(page) -> None:
    """Wait until the app has finished reacting to the last interaction."""
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, timeout=30_000)
