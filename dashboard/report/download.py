"""The Errors page's "Download report" button: the report (dashboard/report/build.py) is built when clicked,
and kept per run and version of its files, so a second click on unchanged files costs nothing."""
from __future__ import annotations

from functools import lru_cache, partial
from pathlib import Path

import streamlit as st

from core.rundir import catalog, layout
from dashboard.report import build

CACHED_REPORTS = 4  # a report is a few MB: keep the last few the Errors page built


def _watched(run_dir: Path) -> tuple[Path, ...]:
    """The files a report is made from: a change in any of them means a new report."""
    return (layout.config(run_dir), layout.status(run_dir), layout.meta(run_dir), layout.metrics(run_dir),
            layout.test_summary(run_dir), layout.test_predictions(run_dir), layout.feature_map(run_dir))


def _files_version(run_dir: Path) -> tuple:
    """What a report depends on, as (modification time, size) of each file: a changed file means a new report."""
    version = []
    for path in _watched(run_dir):
        try:
            stat = path.stat()
            version.append((stat.st_mtime_ns, stat.st_size))
        except OSError:
            version.append(None)
    return tuple(version)


@lru_cache(maxsize=CACHED_REPORTS)
def _cached_report(run_dir: str, files_version: tuple) -> bytes:
    # A plain lru_cache, not st.cache_data: the download's callable runs in a server thread outside any
    # script run, where Streamlit's caches warn.
    return build.build_report(Path(run_dir)).encode("utf-8")


def report_bytes(run_dir: Path) -> bytes:
    """The report as UTF-8, built once per version of the run's files."""
    return _cached_report(str(run_dir), _files_version(run_dir))


def download_button(summary: catalog.RunSummary) -> None:
    """'Download report': the file is built only when clicked (a callable `data`), never on a rerun."""
    st.download_button(
        "Download report", data=partial(report_bytes, summary.path), file_name=build.report_file_name(summary.name),
        mime="text/html", key="errors_report", icon=":material/download:", on_click="ignore",
        help="One HTML file with this run's settings, curves, confusion matrix, most mixed-up pairs with their "
             "pictures, per-class scores and calibration. It opens in any browser without a network, so it can be "
             "e-mailed.")
