"""The one-file HTML report (dashboard/report/) of a real tiny run: opened offline in Chromium, its
variants (no test results yet, pictures unavailable, hostile names), the command line, and the Errors
page's "Download report" button."""
from __future__ import annotations

import contextlib
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.analysis import calibration, mistakes
from core.rundir import layout
from core.rundir.predictions import Predictions, load_predictions
from dashboard import charts, report
from dashboard.report import build, cli, download
from tests import REPO
from tests.browser.harness import CHROMIUM, CHROMIUM_ARGS
from tests.helpers import app_runs_folder, open_view, train_tiny_run

NAME = '<b>Tiny & "quoted"</b>'  # shown as these characters, never as bold


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished one-epoch synthetic run, in the runs folder the dashboard reads."""
    with app_runs_folder(tmp_path_factory) as folder:
        yield train_tiny_run(folder, name=NAME, epochs=1).run_dir


def variant(run: Path, tmp_path: Path) -> Path:
    """A copy of the run to damage or change, leaving the module's run as it is."""
    return Path(shutil.copytree(run, tmp_path / "runs" / run.name))


def write_json(path: Path, change: dict) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))


# ---------------------------------------------------------------------------------------------
# In a real browser, offline
# ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def offline_tab(path: Path):
    """The report file opened in Chromium with no network; yields (tab, fetched, errors): what it tried to
    fetch and what went wrong in its scripts, to be empty."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1400, "height": 1000})
            fetched, errors = [], []

            def only_local(route) -> None:
                """Anything but the file itself and its data: URIs would need a network: refuse and note it."""
                if route.request.url.startswith(("file:", "data:")):
                    route.continue_()
                else:
                    fetched.append(route.request.url)
                    route.abort()

            context.route("**/*", only_local)
            tab = context.new_page()
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.goto(path.as_uri())
            yield tab, fetched, errors
        finally:
            browser.close()


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Chromium not installed at {CHROMIUM}")
def test_the_report_opens_offline_with_its_matrix_pictures_settings_and_scores(run, tmp_path):
    path = tmp_path / report.report_file_name(NAME)
    path.write_text(report.build_report(run), encoding="utf-8")
    preds = load_predictions(run, "test")
    counts = mistakes.confusion_counts(preds.labels, preds.pred, preds.probs.shape[1])
    classes = json.loads((run / "meta.json").read_text())["classes"]
    with offline_tab(path) as (tab, fetched, errors):
        tab.wait_for_selector("#chart-matrix svg .mark-text.role-mark text", timeout=30_000)
        tab.wait_for_selector("#chart-loss svg", timeout=30_000)
        tab.wait_for_selector("#chart-calibration svg .mark-rect.role-mark path", timeout=30_000)
        calibration_bars = tab.locator("#chart-calibration svg .mark-rect.role-mark path").count()
        drawn = tab.eval_on_selector_all("#chart-matrix svg .mark-text.role-mark text", "ts => ts.map(t => t.textContent)")
        pictures = tab.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete && i.naturalWidth)")
        h1, bold = tab.inner_text("h1"), tab.locator("h1 b").count()
        settings, scores = tab.inner_text("table.settings"), tab.inner_text("table.scores")
        title = tab.title()
    assert not fetched and not errors, (fetched, errors)
    assert sorted(drawn) == sorted(str(c) for c in counts.ravel())  # every square's count is drawn
    assert pictures and all(width == 96 for width in pictures)  # 32x32 pictures, loaded, shown 3x
    assert h1 == NAME and bold == 0 and title.startswith(NAME)
    assert "tutorial-cnn" in settings and "batch_size" in settings
    rel = calibration.reliability(*calibration.top_label(preds.probs, preds.labels))
    assert calibration_bars == 2 * int((rel.count > 0).sum())  # a non-empty bin: its bar, and its count bar below
    report_rows = mistakes.class_report(preds.labels, preds.pred, len(classes))
    for name, support in zip(classes, report_rows.support):
        assert f"{name}\t{support}" in scores


# ---------------------------------------------------------------------------------------------
# The HTML itself
# ---------------------------------------------------------------------------------------------

def test_the_chart_script_is_inlined_once_for_all_charts(run):
    page = report.build_report(run)
    assert page.count('class="chart"') == 4  # loss, accuracy, matrix, calibration
    assert page.count(build.vega_bundle()) == 1
    assert "<script src" not in page and "cdn." not in page.replace(build.vega_bundle(), "")


def test_a_run_without_test_results_says_so_and_keeps_its_settings_and_curves(run, tmp_path):
    stopped = variant(run, tmp_path)
    (stopped / "predictions" / "test.npz").unlink()
    write_json(stopped / "status.json", {"state": "stopped"})
    page = report.build_report(stopped)
    assert "This run was stopped before its final test, so it has no test results" in page
    assert 'id="chart-loss"' in page and "<td>batch_size</td>" in page
    assert 'id="chart-matrix"' not in page and "Per-class scores" not in page
    assert 'id="chart-calibration"' not in page and "Calibration" not in page


def test_a_run_whose_pictures_are_gone_says_why_in_one_sentence(run, tmp_path):
    moved = variant(run, tmp_path)
    write_json(moved / "config.json", {"data": str(tmp_path / "gone")})
    page = report.build_report(moved)
    assert f"The images of &#x27;{tmp_path / 'gone'}&#x27; cannot be loaded on this machine:" in page
    assert "data:image/png" not in page
    assert 'id="chart-matrix"' in page and "Per-class scores" in page  # the numbers stay


def test_names_and_class_names_are_text_never_markup(run, tmp_path):
    hostile = variant(run, tmp_path)
    meta = json.loads((hostile / "meta.json").read_text())
    meta["classes"][0] = "</script><img src=x onerror=alert(1)>"
    (hostile / "meta.json").write_text(json.dumps(meta))
    page = report.build_report(hostile).replace(build.vega_bundle(), "")
    assert NAME not in page and "&lt;b&gt;Tiny &amp; &quot;quoted&quot;&lt;/b&gt;" in page
    assert "<img src=x" not in page and page.count("</script>") == page.count("<script")  # no script ends early
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page  # the table and captions
    assert "\\u003c/script\\u003e\\u003cimg" in page  # the charts' data


def test_the_file_name_keeps_safe_characters_only():
    assert report.report_file_name(NAME) == "b-Tiny-quoted-b-report.html"
    assert report.report_file_name("../../etc/passwd") == "etc-passwd-report.html"
    assert report.report_file_name("猫") == "run-report.html"


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def test_the_command_line_writes_the_report_quietly(run, tmp_path):
    out = tmp_path / "out.html"
    done = subprocess.run([sys.executable, "-m", "dashboard.report", str(run), "-o", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == str(out)
    assert done.stderr == ""  # no Streamlit warnings outside `streamlit run`
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_building_the_report_and_its_command_line_import_no_streamlit():
    done = subprocess.run([sys.executable, "-c", "import sys, dashboard.report.cli; print('streamlit' in sys.modules)"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


def test_the_command_line_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert cli.main([str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"{tmp_path} is not a run folder: it has no config.json or status.json.\n"


# ---------------------------------------------------------------------------------------------
# The Errors page
# ---------------------------------------------------------------------------------------------

def test_the_errors_page_offers_the_report_and_builds_it_only_when_asked(run, monkeypatch):
    import streamlit.testing.v1.app_test as app_test
    from streamlit.runtime.media_file_manager import MediaFileManager

    managers = []  # AppTest makes one per run and drops it afterwards: keep them to click the download

    class KeptManager(MediaFileManager):
        def __init__(self, storage):
            super().__init__(storage)
            managers.append(self)

    monkeypatch.setattr(app_test, "MediaFileManager", KeptManager)
    built = []
    monkeypatch.setattr(build, "build_report", lambda path: built.append(path) or f"<!DOCTYPE html>{path.name}")
    download._cached_report.cache_clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIFAR_RUNS_DIR", str(run.parent))
        at = open_view("views/errors.py", run.name)
    button = next(b.proto for b in at.get("download_button") if b.proto.label == "Download report")
    assert button.icon == ":material/download:" and button.deferred_file_id
    assert not built  # drawing the page built nothing
    manager = managers[-1]  # its private tables stand in for the server's download endpoint
    entry = manager._deferred_callables[button.deferred_file_id]
    assert entry["filename"] == "b-Tiny-quoted-b-report.html" and entry["mimetype"] == "text/html"
    url = manager.execute_deferred(button.deferred_file_id)  # what the browser's click asks the server
    assert manager._storage.get_file(url.rsplit("/", 1)[1]).content == f"<!DOCTYPE html>{run.name}".encode()
    manager.execute_deferred(button.deferred_file_id)
    assert built == [run]  # a second download of the same files comes from the cache
    download._cached_report.cache_clear()


def test_numbers_in_the_report_match_the_saved_predictions(run):
    preds = load_predictions(run, "test")
    right = int(np.sum(preds.labels == preds.pred))
    assert f"{len(preds.labels):,} test pictures, {right:,} classified right" in report.build_report(run)


def test_the_calibration_section_shows_cores_numbers_and_chart(run):
    preds = load_predictions(run, "test")
    rel = calibration.reliability(*calibration.top_label(preds.probs, preds.labels))
    page = report.build_report(run)
    part = page[page.index("<h2>Calibration: how sure vs how right</h2>"):]
    assert f"<p>{html.escape(calibration.plain_sentence(rel, 'test'))}</p>" in part
    assert f"Calibration error (ECE): <b>{rel.ece:.1%}</b>" in part
    assert 'id="chart-calibration"' in part
    spec = json.loads(re.search(r'vegaEmbed\("#chart-calibration", (.*?), \{"actions"', part).group(1))
    drawn = next(v for v in spec["datasets"].values() if v and "pictures" in v[0])
    assert [row["pictures"] for row in drawn] == rel.count[rel.count > 0].tolist()
    rows = calibration.per_class(preds.probs, preds.labels)
    classes = json.loads((run / "meta.json").read_text())["classes"]
    for name, r in zip(classes, rows):
        assert f"<tr><td>{html.escape(name)}</td><td>{r.predicted:,}</td>" in part


# ---------------------------------------------------------------------------------------------
# The test-set map
# ---------------------------------------------------------------------------------------------

def with_map(run: Path, tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A copy of the run with a map of its test results (a made-up layout: the report only draws it)."""
    mapped = variant(run, tmp_path)
    preds = load_predictions(mapped, "test")
    xy = np.random.default_rng(0).normal(size=(len(preds.index), 2)).astype(np.float32)
    np.savez(layout.feature_map(mapped), xy=xy, labels=preds.labels, index=preds.index)
    return mapped, xy


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Chromium not installed at {CHROMIUM}")
def test_a_run_with_a_map_shows_it_offline_one_dot_a_picture_crosses_for_mistakes(run, tmp_path):
    mapped, xy = with_map(run, tmp_path)
    preds = load_predictions(mapped, "test")
    path = tmp_path / "map-report.html"
    path.write_text(report.build_report(mapped), encoding="utf-8")
    dots = "#chart-map svg .mark-symbol.role-mark path"
    with offline_tab(path) as (tab, fetched, errors):
        tab.wait_for_selector(dots, timeout=30_000)
        shapes = tab.eval_on_selector_all(dots, "ps => ps.map(p => p.getAttribute('d'))")
        heading = tab.inner_text("section:has(#chart-map) h2")
    assert not fetched and not errors, (fetched, errors)
    assert heading == "Map of the test set" and len(shapes) == len(xy)
    mistakes = int((preds.labels != preds.pred).sum())
    assert 0 < mistakes < len(xy)
    assert sum("A" not in d for d in shapes) == mistakes  # circles are drawn with arcs, crosses with lines only


def test_the_map_section_is_there_only_with_a_map_for_these_test_results(run, tmp_path):
    assert 'id="chart-map"' not in report.build_report(run) and "Map of the test set" not in report.build_report(run)
    mapped, xy = with_map(run, tmp_path)
    page = report.build_report(mapped)
    preds = load_predictions(mapped, "test")
    wrong = int((preds.labels != preds.pred).sum())
    assert f"one of the {len(preds.labels):,} test pictures" in page and f"the {wrong:,} crosses are mistakes" in page
    spec = json.loads(re.search(r'vegaEmbed\("#chart-map", (.*?), \{"actions"', page).group(1))
    drawn = next(v for v in spec["datasets"].values() if v and "x" in v[0])
    np.testing.assert_allclose([[d["x"], d["y"]] for d in drawn], xy, atol=0.006)  # rounded to hundredths
    assert "params" not in json.dumps(spec)  # a static chart: no selections outside the dashboard
    np.savez(layout.feature_map(mapped), xy=xy[:-1], labels=np.zeros(len(xy) - 1, np.int64),
             index=np.arange(len(xy) - 1))  # a map of other test results than those saved now
    assert 'id="chart-map"' not in report.build_report(mapped)


def test_a_map_of_ten_thousand_pictures_is_drawn_past_altairs_row_limit():
    n, rng = 10_000, np.random.default_rng(0)
    labels = rng.integers(0, 10, n)
    preds = Predictions(labels, labels.copy(), rng.dirichlet(np.ones(10), n).astype(np.float16), np.arange(n), "test")
    frame = charts.map_frame(rng.normal(size=(n, 2)).astype(np.float32), preds, [f"c{k}" for k in range(10)], None)
    spec = json.loads(re.search(r'vegaEmbed\("#m", (.*?), \{"actions"', build.chart_html(
        charts.map_chart(frame, False, interactive=False), "m")).group(1))
    assert len(next(iter(spec["datasets"].values()))) == n
