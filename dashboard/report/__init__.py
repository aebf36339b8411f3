"""A run's report as one self-contained HTML file, that opens offline and can be e-mailed.

    build      the HTML, from the run folder through core's checked readers (no Streamlit)
    download   the Errors page's "Download report" button, built when clicked and cached per file version
    cli        `python -m dashboard.report RUN_DIR [-o FILE]`

Importing the package loads only `build`: the command line runs without Streamlit.
"""
from dashboard.report.build import build_report, report_file_name

__all__ = ["build_report", "report_file_name"]
