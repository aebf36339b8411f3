"""The report's command line: `python -m dashboard.report RUN_DIR [-o FILE]` writes the run's report
(dashboard/report/build.py) as one HTML file, and says on stderr which damaged parts it left out."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dashboard.report.build import load_run, render, report_file_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard.report",
                                     description="Write a run's report as one self-contained HTML file.")
    parser.add_argument("run_dir", type=Path, help="the run's folder, e.g. runs/20261124-153012-fastnet-a3f9")
    parser.add_argument("-o", "--output", type=Path, help="where to write it (default: ./<run name>-report.html)")
    args = parser.parse_args(argv)
    try:
        run = load_run(args.run_dir)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    output = args.output or Path(report_file_name(run.summary.name))
    try:
        output.write_text(render(run), encoding="utf-8")
    except OSError as exc:
        print(f"Cannot write {output}: {exc.strerror or exc}.", file=sys.stderr)
        return 1
    for sentence in run.left_out:  # the report says it in the section's place; the terminal is told too
        print(f"Left out of the report: {sentence}", file=sys.stderr)
    print(output)
    return 0
