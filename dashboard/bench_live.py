"""`python -m dashboard.bench_live`: what watching a run in a real browser costs the training it shows, and
how soon after Start its live confusion matrix can be clicked.

On one machine, one after the other, the Quick demo recipe is trained twice on the same data:
1. by `python -m core.train --preset quick-demo` (no dashboard, nobody watching);
2. from the Train page of `streamlit run dashboard/app.py` in Chromium, as a user does it: the data source
   typed in, Start pressed, the live view left open and, once the first epoch's matrix is drawn, its
   largest mistake square clicked (its pictures stay on screen, refreshed with every epoch) until the run ends.
Both runs' seconds come from their own records (epochs plus the final test), so the ratio compares the
training alone. Start -> clickable matrix is timed in the browser: from the click on Start to the first
matrix drawn with its words. Run it from a checkout on an otherwise idle machine; it needs Debian's Chromium
at /usr/bin/chromium and Playwright (both as for the browser tests).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.bench.cli import default_data
from core.bench.measure import Measurement, epoch_records, measure_run_dir
from core.data import load_dataset
from core.rundir import catalog
from core.rundir.state import LIVE_STATES
from tests.browser.harness import CHROMIUM, CHROMIUM_ARGS, IDLE, dashboard

REPO = Path(__file__).resolve().parents[1]
PRESET = "quick-demo"
LAPTOP = {"width": 1366, "height": 768}  # the usual demo screen


@dataclass
class Watched:
    """The browser's side of the watched run."""
    to_matrix_s: float | None = None  # Start pressed -> first matrix drawn, with its words
    to_pictures_s: float | None = None  # square clicked -> its pictures shown
    square: str = ""
    epoch_s: list[float] = field(default_factory=list)


def epoch_seconds(run_dir: Path) -> list[float]:
    return [r["seconds"] for r in epoch_records(run_dir)]


def train_from_command_line(data: str, runs_dir: Path, env: dict[str, str]) -> Measurement:
    m, start = Measurement(seed=0), time.perf_counter()
    subprocess.run([sys.executable, "-m", "core.train", "--preset", PRESET, "--data", data, "--device", "cpu",
                    "--runs-dir", str(runs_dir), "--name", "unwatched", "--quiet"], cwd=REPO, env=env, check=True)
    m.wall_s = time.perf_counter() - start
    (summary,) = catalog.list_runs(runs_dir)
    return measure_run_dir(summary.path, m)


def largest_mistake(numbers: list[int], n: int) -> tuple[int, int]:
    """The off-diagonal square with the most pictures (true class, predicted class)."""
    return max(((t, p) for t in range(n) for p in range(n) if t != p), key=lambda tp: numbers[tp[0] * n + tp[1]])


def click_largest_mistake(page, classes: list[str], watched: Watched) -> None:
    """Click the largest mistake square of the live matrix until its pictures show (a click landing while a
    refresh redraws the chart can be lost)."""
    matrix = page.locator("[data-testid='stVegaLiteChart']").filter(has=page.locator("g.mark-rect"))
    drawn = matrix.locator("g.mark-text.role-mark text").evaluate_all("texts => texts.map(t => t.textContent)")
    n = len(classes)
    true_c, pred_c = largest_mistake([int(t) for t in drawn], n)
    watched.square = f"{classes[true_c]} taken for {classes[pred_c]}"
    clicked = time.monotonic()
    for _ in range(5):
        box = matrix.locator("g.mark-rect.role-mark").first.bounding_box()
        page.mouse.click(box["x"] + (pred_c + 0.8) * box["width"] / n, box["y"] + (true_c + 0.5) * box["height"] / n)
        try:
            page.wait_for_function("() => document.querySelectorAll(\"[data-testid='stImage']\").length > 0",
                                   timeout=10_000)
            watched.to_pictures_s = time.monotonic() - clicked
            return
        except Exception:  # noqa: BLE001 - Playwright's TimeoutError: click again
            continue
    raise RuntimeError(f"five clicks on the square '{watched.square}' showed no pictures")


def train_watched(data: str, runs_dir: Path, cache_dir: Path, log: Path) -> tuple[Measurement, Watched]:
    from playwright.sync_api import sync_playwright

    m, watched = Measurement(seed=0), Watched()
    classes = list(load_dataset(data).classes)
    with dashboard(runs_dir, cache_dir, log) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=LAPTOP)
        page.set_default_timeout(60_000)
        page.goto(url)
        page.wait_for_selector(IDLE, timeout=180_000)
        page.get_by_text("My own folder or archive").click()
        page.wait_for_selector(IDLE)
        path_box = page.get_by_role("textbox", name="Folder or archive")
        path_box.fill(data)
        path_box.press("Enter")
        page.wait_for_timeout(300)
        page.wait_for_selector(IDLE)
        start = time.perf_counter()
        page.get_by_role("button", name=re.compile("Start training")).click()
        page.locator("[data-testid='stVegaLiteChart'] g.mark-rect path").first.wait_for(timeout=600_000)
        page.get_by_text(re.compile(r"Right now it mixes up|no two classes")).wait_for(timeout=60_000)
        watched.to_matrix_s = time.perf_counter() - start
        click_largest_mistake(page, classes, watched)
        (summary,) = catalog.list_runs(runs_dir)
        while catalog.summarize_run(summary.path).state in LIVE_STATES:
            time.sleep(1.0)  # the page stays open and refreshing meanwhile
        m.wall_s = time.perf_counter() - start
        browser.close()
    watched.epoch_s = epoch_seconds(summary.path)
    return measure_run_dir(summary.path, m), watched


def table_row(how: str, m: Measurement, epochs: list[float]) -> str:
    return (f"| {how} | {100 * (m.test_acc or 0):.2f} | {m.train_s:.1f} | {' · '.join(f'{s:.1f}' for s in epochs)} "
            f"| {m.wall_s:.1f} |")


def report(data: str, cli: Measurement, cli_epochs: list[float], seen: Measurement, watched: Watched) -> str:
    when = time.strftime("%Y-%m-%d %H:%M")
    ratio = seen.train_s / cli.train_s if cli.train_s and seen.train_s else None
    lines = [
        f"# Watching a run: Quick demo on {data}, {os.cpu_count()} cores, torch threads as the defaults, {when}",
        "",
        "| how | test acc % | train s | seconds per epoch | wall s |",
        "|---|---|---|---|---|",
        *([table_row("command line", cli, cli_epochs)] if cli.train_s else []),
        table_row("Train page in Chromium 1366×768, live view open, a square chosen", seen, watched.epoch_s),
        "",
        f"- Watched / unwatched training seconds: ×{ratio:.3f}" if ratio else "- No ratio (no command-line run).",
        f"- Start -> clickable live matrix: {watched.to_matrix_s:.1f} s; the square '{watched.square}' clicked -> "
        f"its pictures: {watched.to_pictures_s:.1f} s.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dashboard.bench_live", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=default_data(), help="the archive or folder to train on")
    parser.add_argument("--out", help="also write the report to this Markdown file")
    parser.add_argument("--watched-only", action="store_true",
                        help="only the watched run, e.g. while profiling the server (no ratio then)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-live-") as scratch:
        root = Path(scratch)
        os.environ["CIFAR_CACHE_DIR"] = str(root / "cache")  # this process's loads and both runs' share it
        env = dict(os.environ)
        load_dataset(args.data)  # decode once into the cache, untimed, for both runs
        cli, cli_epochs = Measurement(seed=0), []
        if not args.watched_only:
            cli = train_from_command_line(args.data, root / "cli", env)
            cli_epochs = epoch_seconds(catalog.list_runs(root / "cli")[0].path)
            print(f"command line: {cli.train_s:.1f} s of training ({' · '.join(f'{s:.1f}' for s in cli_epochs)})",
                  flush=True)
        seen, watched = train_watched(args.data, root / "runs", root / "cache", root / "streamlit.log")
        text = report(args.data, cli, cli_epochs, seen, watched)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
