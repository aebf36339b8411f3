"""Class names holding line or paragraph separators (U+2028, U+2029), controls (NUL, U+0085, CR LF, tab),
format characters or lone surrogates still give a confusion matrix: on the Errors page, in the report, and
drawn by a real browser.

Vega-Lite writes a chart's sort list into an expression, and Vega's expression parser ends a string at
U+2028 or U+2029: one such class name left the whole matrix blank. Charts now carry dashboard.charts'
chart_labels (each such character a space, numbered when two names would then look alike), and a click
on a square leads back to its class. The charts are parsed and drawn here by vl-convert (Vega itself,
without a browser), and once by Chromium.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import vl_convert as vlc
from streamlit.proto.WidgetStates_pb2 import WidgetState

from core.analysis import compare, mistakes
from core.data import SYNTHETIC_CLASSES
from core.rundir import catalog, predictions
from dashboard import charts, report
from tests import REPO
from tests.browser.harness import CHROMIUM, browser_page, settle, tiny_run_dashboard
from tests.helpers import app_runs_folder, open_view, rerun, shown, train_tiny_run

# Ten names for the tiny run's ten classes; "line break" is what "line\u2028break" looks like on one line.
CLASSES = ["line\u2028break", "para\u2029graph", "next\x85line", "cr\r\nlf", "nul\x00byte", "tab\tbed",
           "bom\ufeffcat", "line break", "plane", "ship"]


def with_classes(run: Path, classes: list[str]) -> None:
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({**meta, "classes": classes}))


def drawn_squares(spec: dict) -> int:
    """How many squares Vega draws for a confusion-matrix spec (its first rect layer), parsed and rendered by
    vl-convert; raises when Vega cannot parse the spec."""
    svg = vlc.vegalite_to_svg(spec)
    group = svg[svg.index('class="mark-rect role-mark'):]
    return group[: group.index("</g>")].count("<path")


# ---------------------------------------------------------------------------------------------
# The chart functions
# ---------------------------------------------------------------------------------------------

def test_chart_labels_are_printable_different_and_lead_back_to_their_class():
    labels = charts.chart_labels(CLASSES)
    assert labels[:3] == ["line break (2)", "para graph", "next line"] and labels[7:] == CLASSES[7:]
    assert all(label.isprintable() for label in labels) and len(set(labels)) == len(labels)
    assert [charts.label_index(CLASSES, label) for label in labels] == list(range(len(CLASSES)))
    assert [charts.label_index(CLASSES, name) for name in CLASSES] == list(range(len(CLASSES)))
    assert charts.chart_labels(["a\ud800b", "c"]) == ["a b", "c"]  # a lone surrogate cannot be sent


@pytest.mark.parametrize("name", ["line\u2028break", "para\u2029graph", "next\x85line", "cr\r\nlf", "tab\tbed"])
def test_a_matrix_with_a_separator_in_a_class_name_parses_and_draws_every_square(name):
    classes = ["plane", name, "ship"]
    counts = np.array([[3, 1, 0], [0, 2, 1], [1, 0, 4]])
    spec = charts.matrix_chart(counts, classes, normalise=False, chosen=(1, 2)).to_dict()
    assert drawn_squares(spec) == 9
    assert spec["layer"][0]["encoding"]["x"]["sort"] == charts.chart_labels(classes)


def drawn_marks(spec: dict, mark: str) -> int:
    """How many marks of kind `mark` ("rect", "symbol") Vega draws for `spec`, parsed and rendered by vl-convert."""
    svg = vlc.vegalite_to_svg(spec)
    return sum(group[: group.index("</g>")].count("<path") for group in svg.split(f'class="mark-{mark} role-mark')[1:])


def test_the_compare_pages_difference_matrix_parses_and_draws_every_square_of_odd_class_names():
    classes = ["plane", "line\u2028break", "ship"]
    labels, pred_a, pred_b = (np.array(v) for v in ([0, 1, 1, 2, 2], [0, 1, 2, 2, 0], [0, 2, 2, 2, 2]))
    aligned = compare.Aligned(np.arange(5), labels, pred_a, pred_b, np.ones(5), np.ones(5), num_classes=3)
    spec = charts.difference_chart(aligned, classes, chosen=(1, 2)).to_dict()
    assert drawn_squares(spec) == 9
    assert spec["layer"][0]["encoding"]["x"]["sort"] == charts.chart_labels(classes)
    diffs = {(row["true"], row["pred"]): row["diff"] for row in next(iter(spec["datasets"].values()))}
    # B minus A: B took both line breaks for ships, A one of them
    assert diffs[("line break", "ship")] == 1 and diffs[("line break", "line break")] == -1


def test_the_data_pages_counts_draw_a_bar_per_class_and_set_even_for_odd_class_names():
    counts = pd.DataFrame({"Class": ["line\u2028break", "ship"], "Training": [5, 7], "Test": [2, 3]})
    spec = charts.class_counts_chart(counts, ["Training", "Test"]).to_dict()
    assert drawn_marks(spec, "rect") == 4
    assert spec["encoding"]["x"]["sort"] == ["line break", "ship"]


def test_a_pictures_top_classes_are_drawn_most_likely_first():
    spec = charts.top_k_chart(np.array([0.1, 0.6, 0.05, 0.25]), ["a", "b", "c", "d"], k=3).to_dict()
    assert [row["class"] for row in next(iter(spec["datasets"].values()))] == ["b", "d", "a"]
    assert drawn_marks(spec, "rect") == 3


def test_no_page_builds_a_chart_of_its_own():
    """dashboard/charts/ holds every chart (README), so the report and the pages draw the same ones."""
    builders = re.compile(r"\balt\.(Chart|layer|hconcat|vconcat|LayerChart)\(")
    outside = [str(path.relative_to(REPO)) for path in (REPO / "dashboard").rglob("*.py")
               if "charts" not in path.relative_to(REPO / "dashboard").parts and builders.search(path.read_text())]
    assert outside == []


# ---------------------------------------------------------------------------------------------
# The Errors page and the report
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def odd_run(tmp_path_factory) -> Path:
    """A finished tiny run whose meta.json names its classes CLASSES."""
    with app_runs_folder(tmp_path_factory) as folder:
        run = train_tiny_run(folder, name="odd names", epochs=1).run_dir
        with_classes(run, CLASSES)
        yield run


def inlined(proto) -> dict:
    """A chart as AppTest received it, its named Arrow datasets put back into the spec as values."""
    spec = json.loads(proto.spec)
    tables = {d.name: pa.ipc.open_stream(d.data.data).read_all().to_pylist() for d in proto.datasets}

    def put_back(node):
        if isinstance(node, dict):
            if set(node) == {"name"} and node["name"] in tables:
                return {"values": tables[node["name"]]}
            return {k: put_back(v) for k, v in node.items()}
        return [put_back(v) for v in node] if isinstance(node, list) else node
    return put_back(spec)


def test_the_errors_page_draws_the_matrix_of_classes_named_with_separators(odd_run):
    at = open_view("views/errors.py")
    at.session_state["run_id"] = odd_run.name
    rerun(at)
    chart = at.get("vega_lite_chart")[0].proto
    spec = inlined(chart)
    assert drawn_squares(spec) == len(CLASSES) ** 2
    labels = charts.chart_labels(CLASSES)
    assert spec["layer"][0]["encoding"]["x"]["sort"] == labels == spec["layer"][0]["encoding"]["y"]["sort"]
    squares = spec["data"]["values"]
    assert sorted({row["true"] for row in squares}) == sorted(labels)
    # A click on the square (line\u2028break, line break) sends its labels back: the square's pictures follow.
    states = at._tree.get_widget_states()
    states.widgets.append(WidgetState(id=chart.id, string_value=json.dumps(
        {"selection": {"cell": [{"true": labels[0], "pred": labels[7]}]}})))
    rerun(at, states)
    preds = predictions.load_predictions(odd_run, "test")
    n = int(mistakes.confusion_counts(preds.labels, preds.pred, len(CLASSES))[0, 7])
    assert "line break taken for line break" in [shown(h.value) for h in at.subheader]
    assert f"{n} pictures, the most confident prediction first." in [c.value for c in at.caption]


def test_the_report_holds_and_draws_the_matrix_of_classes_named_with_separators(odd_run):
    page = report.build_report(odd_run)
    spec = json.loads(re.search(r'vegaEmbed\("#chart-matrix", (.*?), \{"actions"', page).group(1))
    assert drawn_squares(spec) == len(CLASSES) ** 2
    squares = next(v for v in spec["datasets"].values() if v and "count" in v[0])
    assert sorted({row["pred"] for row in squares}) == sorted(charts.chart_labels(CLASSES))


def test_class_names_with_a_lone_surrogate_are_not_used_and_nothing_breaks(odd_run, tmp_path):
    broken = Path(shutil.copytree(odd_run, tmp_path / "runs" / odd_run.name))
    with_classes(broken, ["a\ud800b", *CLASSES[1:]])  # "\ud800" in JSON: no text can hold it
    page = report.build_report(broken)
    page.encode("utf-8")  # written as UTF-8 without an error
    assert "a\ud800b" not in page and f"<td>{SYNTHETIC_CLASSES[0]}</td>" in page  # the data's names instead


def test_a_run_name_with_a_lone_surrogate_is_a_damaged_run_not_a_crash(odd_run, tmp_path, monkeypatch):
    broken = Path(shutil.copytree(odd_run, tmp_path / "runs" / odd_run.name))
    meta = json.loads((broken / "meta.json").read_text())
    (broken / "meta.json").write_text(json.dumps({**meta, "name": "odd\ud800name"}))
    summary = catalog.summarize_run(broken)
    assert summary.state == "damaged"
    assert summary.error == "meta.json is damaged: name should be text, got 'odd\\ud800name'."
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(broken.parent))
    open_view("views/runs.py")  # the sidebar lists it without an exception
    done = subprocess.run([sys.executable, "-m", "dashboard.report", str(broken), "-o", str(tmp_path / "r.html")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


def test_the_data_page_draws_the_counts_of_a_folder_class_named_with_a_separator(tmp_path, monkeypatch):
    from tests.dashboard.test_app_data import png

    for split, per_class in (("train", 20), ("test", 5)):
        for name, colour in (("line\u2028break", (220, 20, 20)), ("plane", (20, 20, 220))):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            for i in range(per_class):
                (tmp_path / "data" / split / name / f"{i}.png").write_bytes(png(colour))
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(tmp_path / "no runs"))
    monkeypatch.setenv("CIFAR_CACHE_DIR", str(tmp_path / "cache"))
    at = open_view("views/data.py", data_source_kind="path", data_source_path=str(tmp_path / "data"))
    spec = inlined(at.get("vega_lite_chart")[0].proto)  # the page's one chart: pictures per class
    assert drawn_squares(spec) == 2 * 3  # a bar a class and set (training, validation, test)
    assert spec["encoding"]["x"]["sort"] == ["line break", "plane"]


# ---------------------------------------------------------------------------------------------
# In a real browser
# ---------------------------------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Chromium not installed at {CHROMIUM}")
def test_chromium_draws_every_square_of_the_errors_pages_matrix(tmp_path):
    with tiny_run_dashboard(tmp_path, "odd names", epochs=1) as (url, run_dir), browser_page(1600, 1200) as page:
        with_classes(run_dir, CLASSES)
        page.goto(url)
        settle(page)
        page.locator("[data-testid='stSidebarNav'] a", has_text="Errors").click()
        squares = page.locator("[data-testid='stVegaLiteChart']").first.locator("g.mark-rect").first.locator("path")
        squares.first.wait_for(timeout=60_000)  # a chart Vega cannot parse stays blank: this times out
        settle(page)
        drawn = squares.count()
        axis_labels = page.locator("[data-testid='stVegaLiteChart']").first.locator(
            "g.role-axis-label text").evaluate_all("ts => ts.map(t => t.textContent)")
    assert drawn == len(CLASSES) ** 2
    assert set(charts.chart_labels(CLASSES)) <= set(axis_labels), axis_labels
