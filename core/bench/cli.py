"""`python -m core.bench`'s command line: flags to Options, run the rows, print and write the report."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import torch

from core.bench.report import report, write_outputs
from core.bench.resume_check import check_resume
from core.bench.rows import CPU_ROWS, ROWS, Options, run_bench, time_load, write_subset_folder
from core.training.device import resolve_device
from core.training.recipes import PRESETS

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SHARED_ARCHIVE = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"

def default_data() -> str:
    return str(SHARED_ARCHIVE) if SHARED_ARCHIVE.is_file() else "cifar10"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.bench", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Measure accuracy and speed of the recipes through the training engine.")
    parser.add_argument("--data", default=default_data(), help="data source: archive, folder, cifar10 or synthetic")
    parser.add_argument("--mode", choices=("gpu", "cpu"), default="gpu",
                        help="gpu: the table of rows on --device; cpu: the quick demo on the CPU, "
                             "command line vs dashboard")
    parser.add_argument("--cpu", action="store_const", const="cpu", dest="mode", help="same as --mode cpu")
    parser.add_argument("--rows", help=f"comma-separated rows (gpu mode: {', '.join(ROWS)}; cpu mode: presets)")
    parser.add_argument("--seeds", type=int, help="seeds per row (default: 5 in gpu mode, 2 in cpu mode)")
    parser.add_argument("--epochs", type=int, help="override every row's epochs (smoke checks)")
    parser.add_argument("--limit", type=int, help="use at most this many train and test images (smoke checks)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N, mps (cpu mode: cpu)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers of the tutorial way")
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=None,
                        help="one untimed 1-epoch run per row first (default: on for cuda)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training step of engine rows")
    parser.add_argument("--runs-dir", help="keep the runs here (default: a temporary folder, deleted)")
    parser.add_argument("--out", help="also write the report to OUT.md and OUT.json")
    parser.add_argument("--check-resume", action="store_true",
                        help="instead of the table: stop a quick-demo run after its first epoch on --device, resume "
                             "it, and compare it with a run trained without a stop")
    return parser


def options_from_args(args: argparse.Namespace, data: str) -> Options:
    mode = args.mode
    keys = tuple(k.strip() for k in args.rows.split(",") if k.strip()) if args.rows else (
        CPU_ROWS if mode == "cpu" else tuple(ROWS))
    allowed = tuple(PRESETS) if mode == "cpu" else tuple(ROWS)
    unknown = [k for k in keys if k not in allowed]
    if unknown or not keys:
        raise ValueError(f"--rows {args.rows!r} names unknown rows for {mode} mode; choose from: {', '.join(allowed)}.")
    seeds = args.seeds if args.seeds is not None else (2 if mode == "cpu" else 5)
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}.")
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}.")
    if args.limit is not None and args.limit < 10:
        raise ValueError(f"--limit must be at least 10 images, got {args.limit}.")
    if args.workers < 0:
        raise ValueError(f"--workers must be 0 or more, got {args.workers}.")
    device = resolve_device("cpu" if mode == "cpu" and args.device is None else (args.device or "auto"))
    if mode == "gpu" and device.type == "cpu" and args.epochs is None and args.limit is None:
        log.warning("The gpu-mode table on a CPU takes many hours (ResNet-18 alone); for the laptop goals use "
                    "--cpu, or choose --rows and --epochs.")
    warmup = args.warmup if args.warmup is not None else device.type == "cuda"
    return Options(mode, data, keys, seeds, device, args.epochs, args.workers, warmup, args.compile,
                   source=args.data, limit=args.limit)


def main(argv: Sequence[str] | None = None, stream=None) -> int:
    stream = stream or sys.stdout
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        opts = options_from_args(args, args.data)
        if args.limit:
            opts = dataclasses.replace(opts, data=write_subset_folder(args.data, args.limit, scratch / "subset"))
        opts = dataclasses.replace(opts, first_load_s=time_load(opts.data))  # later loads hit the cache
        runs_dir = Path(args.runs_dir) if args.runs_dir else scratch / "runs"
        if args.check_resume:
            passed, line = check_resume(opts.data, opts.device, runs_dir)
            stream.write(f"{line}\n")
            return 0 if passed else 1
        results = run_bench(opts, runs_dir, scratch)
    except ValueError as err:  # bad flags, unusable data (DataError): one sentence, no traceback
        sys.stderr.write(f"error: {err}\n")
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = report(results, opts, argv)
    stream.write(text)
    if args.out:
        write_outputs(Path(args.out), text, results, opts, argv)
    failed = [f"{r.key} seed {m.seed}: {m.error}" for r in results for m in r.runs if m.error]
    for line in failed:
        sys.stderr.write(f"failed: {line}\n")
    return 1 if failed else 0
