"""A run's report as one self-contained HTML file: settings, learning curves, the final test's confusion
matrix, the most mixed-up pairs with their pictures, per-class scores, calibration (how sure vs how
right), and the test-set map when the run has one.

It opens offline (nothing is fetched: the charts' JavaScript is inlined once, pictures are PNG data
URIs), so a report can be e-mailed to someone without the dashboard. Everything the run provides
(names, class names, settings, messages) is escaped with html.escape, and the charts' JSON cannot
close its <script>.

    build_report(run_dir) -> str             the HTML, for the Errors page's button (dashboard/report/download.py)
                                             and the command line (dashboard/report/cli.py)

The report is a list of section functions (SECTIONS), each turning the loaded run into an HTML
fragment or None when it has nothing to show; a new section is one more function in that list. Every
file is read once, in `load_run`, through core's checked readers: a damaged one leaves its part out,
with its one sentence in that part's place (and, from the command line, on stderr). The
charts are those of the dashboard (dashboard/charts.py), exported through Altair's HTML export; every number
comes from core (core.analysis), the words from dashboard/wording.py. This module imports no Streamlit, so
the command line runs quietly outside `streamlit run`.
"""
from __future__ import annotations

import base64
import html
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import altair as alt
import jinja2
import numpy as np
from PIL import Image

from core.analysis import calibration, curves, features, mistakes, pictures
from core.data import ImageSet
from core.rundir import catalog, layout
from core.rundir.predictions import Predictions, PredictionsError, load_predictions
from dashboard import wording
from dashboard.charts import curve_chart, map_chart, map_frame, matrix_chart, reliability_chart

SMOOTHING = 0.6  # the training curve's smoothing, the live view's default
PAIRS_SHOWN = 5
PICTURES_PER_DIRECTION = 8  # the most confident mistakes of each direction of a pair
CURVE_WIDTH = 420  # pixels: two curves side by side on a laptop screen
CALIBRATION_WIDTH = 520  # pixels: the reliability diagram, alone on its row
MAP_WIDTH = 820  # pixels: the test-set map with its legends, alone on its row
ZOOM = 3  # 32x32 pictures drawn 96x96, each pixel a 3x3 block (nearest neighbour keeps them sharp)


# ---------------------------------------------------------------------------------------------
# What a report is made from
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReportRun:
    """One run as the sections see it: its files read once, each through core's checked readers."""
    summary: catalog.RunSummary
    metrics: list[dict]
    preds: Predictions | None  # the final test predictions; None: not saved yet, or damaged (see `problem`)
    problem: str | None  # why there are no test predictions to show, one sentence
    classes: list[str]
    images: ImageSet | None  # the test pictures, in the predictions' source split
    images_reason: str | None  # why the pictures are not included, one sentence
    test_map: features.FeatureSet | None = None  # the test-set map made for these predictions, if any
    map_problem: str | None = None  # why the map is left out when its file is damaged, one sentence
    damaged: bool = False  # whether `problem` is a damaged predictions file (not merely none saved yet)

    @property
    def left_out(self) -> tuple[str, ...]:
        """One sentence per damaged file whose part the report leaves out (each said in that part's place)."""
        return tuple(s for s in (self.problem if self.damaged else None, self.map_problem) if s)


def load_run(run_dir: Path) -> ReportRun:
    """Read what the report shows; raises ValueError (one sentence) when `run_dir` is not a run folder."""
    if not run_dir.is_dir():
        raise ValueError(f"There is no run folder at {run_dir}.")
    if not layout.config(run_dir).is_file() and not layout.status(run_dir).is_file():
        raise ValueError(f"{run_dir} is not a run folder: it has no {layout.CONFIG} or {layout.STATUS}.")
    summary = catalog.summarize_run(run_dir)
    try:
        preds, problem = load_predictions(run_dir, "test"), None
    except PredictionsError as exc:
        preds, problem = None, str(exc)
    if preds is None:
        damaged, problem = problem is not None, problem or wording.no_predictions_message(summary, "test")
        return ReportRun(summary, catalog.read_metrics(run_dir), None, problem, [], None, None, damaged=damaged)
    data, images_reason = pictures.run_dataset(summary.config)
    images = None
    if data is not None:
        images, images_reason = pictures.evaluated_split(data, preds)
    data_classes = data.classes if data is not None else None
    classes = pictures.class_names(summary, preds.probs.shape[1], lambda: data_classes)
    test_map, map_problem = load_map(run_dir, preds)
    return ReportRun(summary, catalog.read_metrics(run_dir), preds, None, classes, images, images_reason, test_map,
                     map_problem)


def load_map(run_dir: Path, preds: Predictions) -> tuple[features.FeatureSet | None, str | None]:
    """The test-set map made for `preds`, or None: with the damaged file's sentence, or (None, None) when
    there is no map or one made for other test results than those saved now."""
    try:
        test_map = features.load_map(run_dir)
    except PredictionsError as exc:
        return None, str(exc)
    return (test_map, None) if test_map is not None and features.fits_test_results(test_map, preds) else (None, None)


# ---------------------------------------------------------------------------------------------
# HTML pieces
# ---------------------------------------------------------------------------------------------

def text(value: object) -> str:
    """Any value as escaped HTML text; missing and non-finite numbers read as wording.MISSING."""
    if value is None or value == "" or (isinstance(value, float) and not np.isfinite(value)):
        return wording.MISSING
    return html.escape(str(value))


def percent(value: float | None) -> str:
    return wording.MISSING if value is None or not np.isfinite(value) else f"{value:.1%}"


def table(header: list[str] | None, rows: list[list[str]], css: str = "") -> str:
    """An HTML table of cells that are already HTML (escape run-provided text before); header None: none."""
    head = "<thead><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr></thead>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}">{head}<tbody>{body}</tbody></table>'


def section(title: str, body: str) -> str:
    return f"<section><h2>{title}</h2>\n{body}\n</section>"


class _ScriptSafeJSON(json.JSONEncoder):
    """JSON that cannot end the <script> it sits in: a class named '</script>' stays inside its string."""

    def encode(self, o: object) -> str:
        return super().encode(o).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# Altair's HTML export, one chart at a time, without the script tags that fetch Vega from a CDN: the
# page's <head> carries the bundle once (see `vega_bundle`).
CHART_TEMPLATE = jinja2.Template(
    '<div class="chart" id="{{ output_div }}"></div>\n'
    '<script>vegaEmbed("#{{ output_div }}", {{ spec }}, {{ embed_options }}).catch(console.error);</script>')


def chart_html(chart: alt.TopLevelMixin, div_id: str) -> str:
    # Altair refuses more than 5,000 rows by default; the map has one a test picture (10,000 for CIFAR-10).
    with alt.data_transformers.disable_max_rows():
        return chart.to_html(template=CHART_TEMPLATE, output_div=div_id, fullhtml=False,
                             embed_options={"actions": False, "renderer": "svg"}, json_kwds={"cls": _ScriptSafeJSON})


@lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one script (about 0.9 MB), the one Altair's to_html(inline=True) inlines."""
    from altair.utils._importers import import_vl_convert, vl_version_for_vl_convert

    return import_vl_convert().javascript_bundle(vl_version=vl_version_for_vl_convert())


def picture(image: np.ndarray, caption: str) -> str:
    """A picture as an <img> with its PNG inline, enlarged ZOOM times with nearest neighbour."""
    pil = Image.fromarray(image)  # (H, W, 3) uint8
    pil = pil.resize((pil.width * ZOOM, pil.height * ZOOM), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", optimize=True)
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<figure><img src="{uri}" width="{pil.width}" height="{pil.height}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>")


# ---------------------------------------------------------------------------------------------
# Sections: each returns its HTML, or None when the run has nothing for it
# ---------------------------------------------------------------------------------------------

Section = Callable[[ReportRun], "str | None"]


def settings_section(run: ReportRun) -> str:
    s = run.summary
    facts = [("Name", text(s.name)), ("Run id", text(s.run_id)), ("State", text(s.state)),
             ("Model", text(s.model)), ("Data", text(wording.data_label(s.data) or None)),
             ("Device", text(s.device)), ("Epochs", f"{text(s.epoch)} of {text(s.epochs)}"),
             ("Created (UTC)", text(wording.created_text(s.created_at))),
             ("Training time", text(wording.format_duration(s.duration_s) or None)),
             ("Best validation accuracy", percent(s.best_val_acc)), ("Test accuracy", percent(s.test_acc))]
    if s.error:
        facts.append(("Problem", text(s.error)))
    body = table(None, [[k, v] for k, v in facts], "facts")
    if s.config:
        body += "<h3>Training settings</h3>" + table(["Setting", "Value"],
                                                      [[text(k), text(v)] for k, v in s.config.items()], "settings")
    else:
        body += f"<p>The run's settings ({layout.CONFIG}) are missing.</p>"
    return section("Run and settings", body)


def curves_section(run: ReportRun) -> str:
    lines = curves.live_curves(run.metrics, SMOOTHING)
    if lines.empty:
        return section("Learning curves", "<p>The run has recorded no training steps yet, so there are no curves.</p>")
    loss = curve_chart(lines[lines.metric == "loss"], "Loss").properties(width=CURVE_WIDTH)
    accuracy = curve_chart(lines[lines.metric == "accuracy"], "Accuracy", percent=True).properties(width=CURVE_WIDTH)
    charts = [chart_html(loss, "chart-loss"), chart_html(accuracy, "chart-accuracy")]
    note = (f"<p class=\"note\">Training values are faint as logged and smoothed ({SMOOTHING}) on top; "
            "validation has one point an epoch.</p>")
    return section("Learning curves", note + '<div class="row">' + "".join(charts) + "</div>")


def results_section(run: ReportRun) -> str:
    if run.preds is None:
        return section("Final test results", f'<p class="notice">{text(run.problem)}</p>')
    judged = mistakes.tally(run.preds.labels, run.preds.pred)
    return section("Final test results", f"<p>{judged.total:,} test pictures, {judged.right:,} classified right "
                                         f"({judged.accuracy:.1%}).</p>")


def matrix_section(run: ReportRun) -> str | None:
    if run.preds is None:
        return None
    counts = mistakes.confusion_counts(run.preds.labels, run.preds.pred, len(run.classes))
    note = "<p class=\"note\">Rows are the true classes, columns what the model said.</p>"
    chart = matrix_chart(counts, run.classes, normalise=False, chosen=None)
    return section("Confusion matrix", note + chart_html(chart, "chart-matrix"))


def _direction(run: ReportRun, t: int, p: int, n: int) -> str:
    """One direction of a pair: its count and its most confident pictures."""
    heading = f"<h4>{text(run.classes[t])} taken for {text(run.classes[p])}: {n:,}</h4>"
    if run.images is None or n == 0:
        return heading
    preds = run.preds
    positions = mistakes.cell_positions(preds.labels, preds.pred, preds.probs, t, p)[:PICTURES_PER_DIRECTION]
    tiles = [picture(run.images.images[preds.index[i]], f"{preds.probs[i, p]:.0%} {text(run.classes[p])}")
             for i in positions]
    return heading + '<div class="pictures">' + "".join(tiles) + "</div>"


def pairs_section(run: ReportRun) -> str | None:
    if run.preds is None:
        return None
    counts = mistakes.confusion_counts(run.preds.labels, run.preds.pred, len(run.classes))
    pairs = mistakes.confused_pairs(counts, PAIRS_SHOWN)
    if not pairs:
        return section("Most mixed-up pairs",
                       "<p>No two classes are mixed up: every picture was classified correctly.</p>")
    parts = ["<p class=\"note\">Mistakes in both directions added up; pictures most confident first, captioned "
             "with the probability given to the wrong class.</p>"]
    if run.images is None:
        parts.append(f'<p class="notice">{text(run.images_reason)}</p>')
    for rank, pair in enumerate(pairs, 1):
        parts.append(f"<h3>{rank}. {text(run.classes[pair.a])} ↔ {text(run.classes[pair.b])}: {pair.total:,}</h3>")
        parts.append(_direction(run, pair.a, pair.b, pair.a_as_b) + _direction(run, pair.b, pair.a, pair.b_as_a))
    return section("Most mixed-up pairs", "\n".join(parts))


def class_scores_section(run: ReportRun) -> str | None:
    if run.preds is None:
        return None
    report = mistakes.class_report(run.preds.labels, run.preds.pred, len(run.classes))
    rows = [[text(name), f"{report.support[k]:,}", percent(report.accuracy[k]), percent(report.precision[k]),
             percent(report.recall[k]), percent(report.f1[k])] for k, name in enumerate(run.classes)]
    return section("Per-class scores", table(["Class", "Images", "Accuracy", "Precision", "Recall", "F1"], rows,
                                             "scores"))


def calibration_section(run: ReportRun) -> str | None:
    if run.preds is None:
        return None
    rel = calibration.reliability(*calibration.top_label(run.preds.probs, run.preds.labels))
    summary = (f"<p>{text(calibration.plain_sentence(rel, 'test'))}</p>"
               f"<p>Calibration error (ECE): <b>{rel.ece:.1%}</b>, the gap between how sure and how right, averaged "
               f"over {calibration.N_BINS} confidence bins weighted by their pictures (0% is perfect). Mean "
               f"confidence {percent(rel.mean_confidence)}, right {percent(rel.overall_accuracy)}.</p>")
    note = ("<p class=\"note\">Bars: how often the model was right among the pictures it was this sure of; red "
            "dots: their mean confidence; dashed: perfect calibration (bars below it are over-confident). Below: "
            "pictures per bin.</p>")
    rows = [[text(name), f"{r.predicted:,}", percent(r.mean_confidence), percent(r.accuracy), percent(r.ece)]
            for name, r in zip(run.classes, calibration.per_class(run.preds.probs, run.preds.labels))]
    classes = ("<h3>Per predicted class</h3><p class=\"note\">Pictures grouped by the class the model said, not "
               "their true class.</p>" + table(["Class", "Predicted as this class", "Mean confidence", "Right",
                                                "ECE"], rows, "scores calibration"))
    chart = chart_html(reliability_chart(rel, width=CALIBRATION_WIDTH), "chart-calibration")
    return section("Calibration: how sure vs how right", summary + note + chart + classes)


def map_section(run: ReportRun) -> str | None:
    """The test-set map (layout.feature_map) as the Map page draws it; None without a map for these results."""
    if run.preds is None:
        return None
    if run.map_problem:
        return section("Map of the test set", f'<p class="notice">{text(run.map_problem)}</p>')
    if run.test_map is None:
        return None  # no map, or one made for other test results than those saved now
    # Rounded as float64 (float32 prints long decimals): a hundredth of a t-SNE unit is far below a pixel.
    frame = map_frame(run.test_map.values, run.preds, run.classes, None)
    frame = frame.astype({"x": float, "y": float, "sure": float}).round({"x": 2, "y": 2, "sure": 3})
    judged = mistakes.tally(run.preds.labels, run.preds.pred)  # the frame has one row a test picture
    note = (f"<p class=\"note\">Each dot is one of the {judged.total:,} test pictures, placed by what the model sees "
            f"in it (a t-SNE layout of its last features): pictures it finds alike sit close together. Colour is the "
            f"true class; the {judged.wrong:,} crosses are mistakes.</p>")
    return section("Map of the test set", note + chart_html(map_chart(frame, False, interactive=False,
                                                                       width=MAP_WIDTH), "chart-map"))


SECTIONS: tuple[Section, ...] = (settings_section, curves_section, results_section, matrix_section, pairs_section,
                                 class_scores_section, calibration_section, map_section)


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .made { color: #666; margin-top: 0; }
section { margin-top: 2.2rem; } h4 { margin: 1rem 0 0.3rem; font-weight: 600; }
table { border-collapse: collapse; margin: 0.5rem 0; } th, td { padding: 0.25rem 0.8rem; text-align: left; }
tbody tr:nth-child(odd) { background: #f4f6f8; } table.scores td:not(:first-child) { text-align: right; }
table.facts td:first-child { color: #555; }
.note { color: #555; } .notice { background: #fff4e5; border-left: 4px solid #f0a030; padding: 0.5rem 0.8rem; }
.row { display: flex; flex-wrap: wrap; gap: 1.5rem; } .chart { min-width: 420px; }
.pictures { display: flex; flex-wrap: wrap; gap: 0.6rem; }
figure { margin: 0; text-align: center; font-size: 0.8rem; color: #555; }
figure img { image-rendering: pixelated; display: block; border: 1px solid #ddd; }
"""


def render(run: ReportRun) -> str:
    """The whole page: every section in order, the chart script once in <head> when any section has a chart."""
    body = "\n".join(html_part for html_part in (s(run) for s in SECTIONS) if html_part)
    script = f"<script>\n{vega_bundle()}\n</script>" if 'class="chart"' in body else ""
    name, made = text(run.summary.name), datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{name}: training report</title>\n<style>{STYLE}</style>\n{script}\n</head>\n<body>\n"
            f"<h1>{name}</h1>\n<p class=\"made\">Training report of run {text(run.summary.run_id)}, made {made}.</p>\n"
            f"{body}\n</body>\n</html>\n")


def build_report(run_dir: Path) -> str:
    """The report of the run in `run_dir` as one HTML page; ValueError (one sentence) for a non-run folder."""
    return render(load_run(Path(run_dir)))


def report_file_name(name: str) -> str:
    """'<run name>-report.html' in letters, digits, '.', '_' and '-' only (safe in every file system)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:80] or "run"
    return f"{safe}-report.html"
