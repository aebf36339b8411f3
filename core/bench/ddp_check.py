"""`python -m core.bench.ddp_check`: does one run trained by N processes (torchrun, DDP) reach the test accuracy
of a single process with the same global batch, within the noise between seeds?

For each seed it trains the recipe twice through the command line, `python -m core.train` and
`torchrun --nproc_per_node=N -m core.train`, each in a subprocess, then prints one row per seed and the
mean ± standard deviation of each way, their difference, and whether it is within two standard errors.

    python -m core.bench.ddp_check --seeds 0 1 2 --data synthetic --epochs 2        # a smoke check
    python -m core.bench.ddp_check --seeds 0 1 2 --data ../shared/data/cifar10-jpeg.tar.gz --device cpu
    python -m core.bench.ddp_check --seeds 0 1 2 --processes 2 --device cuda          # on a 2-GPU machine
"""
from __future__ import annotations

import argparse
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from core.bench.cli import default_data
from core.rundir import catalog, records
from core.training import distributed
from core.training.recipes import PRESETS, preset_config


@dataclass(frozen=True)
class Trained:
    test_acc: float | None  # None when the run did not complete
    train_s: float  # the epochs' seconds from the run's own records
    wall_s: float  # the whole command, start-up and data loading included
    error: str | None = None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.bench.ddp_check", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train a recipe with one process and with N (torchrun, DDP) for a few seeds; compare accuracy.")
    parser.add_argument("--data", default=default_data(), help="data source: archive, folder, cifar10 or synthetic")
    parser.add_argument("--preset", default="quick-demo", choices=sorted(PRESETS), help="the recipe trained")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds, one row each")
    parser.add_argument("--processes", type=int, default=2, help="processes of the torchrun way")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (each rank takes its own GPU)")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    parser.add_argument("--runs-dir", help="keep the runs here (default: a temporary folder, deleted)")
    return parser


def train_once(command: list[str], runs_dir: Path) -> Trained:
    """Run one training command into its own runs folder and read the run it made."""
    start = time.perf_counter()
    done = subprocess.run(command + ["--runs-dir", str(runs_dir), "--quiet"], cwd=distributed.REPO,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    folders = [p for p in runs_dir.iterdir() if p.is_dir()] if runs_dir.is_dir() else []
    if done.returncode != 0 or len(folders) != 1:
        lines = [line for line in done.stderr.splitlines() if line.strip()] or ["no message"]
        return Trained(None, 0.0, wall, f"exit status {done.returncode}: {lines[-1]}")
    metrics = catalog.read_metrics(folders[0])
    summary = records.read_test_summary(folders[0]) or {}
    seconds = sum(r.get("seconds") or 0.0 for r in metrics if r["kind"] == "val")
    return Trained(summary.get("accuracy"), seconds, wall)


def mean_spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def verdict(single: list[float], team: list[float]) -> str:
    """The difference of the means against two standard errors of that difference."""
    (m1, s1), (m2, s2) = mean_spread(single), mean_spread(team)
    bound = 2 * math.sqrt(s1 ** 2 / len(single) + s2 ** 2 / len(team))
    within = abs(m2 - m1) <= bound
    return (f"difference of the means {100 * (m2 - m1):+.2f} points; two standard errors {100 * bound:.2f}: "
            f"{'within noise' if within else 'NOT within noise'}")


def table(rows: list[tuple[int, Trained, Trained]], processes: int) -> str:
    lines = [f"| seed | 1 process test acc % | {processes} processes test acc % | difference (points) "
             f"| 1 process train s | {processes} processes train s |", "|---|---|---|---|---|---|"]
    for seed, one, team in rows:
        both = one.test_acc is not None and team.test_acc is not None
        diff = f"{100 * (team.test_acc - one.test_acc):+.2f}" if both else "-"
        lines.append(f"| {seed} | {_acc(one)} | {_acc(team)} | {diff} | {one.train_s:.1f} | {team.train_s:.1f} |")
    single = [one.test_acc for _, one, _ in rows if one.test_acc is not None]
    teamed = [team.test_acc for _, _, team in rows if team.test_acc is not None]
    if single and teamed:
        lines.append(f"| mean ± std | {_ms(single)} | {_ms(teamed)} | | | |")
        lines.append("")
        lines.append(verdict(single, teamed))
    return "\n".join(lines) + "\n"


def _acc(t: Trained) -> str:
    return f"{100 * t.test_acc:.2f}" if t.test_acc is not None else f"failed ({t.error})"


def _ms(values: list[float]) -> str:
    m, s = mean_spread(values)
    return f"{100 * m:.2f} ± {100 * s:.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = distributed.batch_size_refusal(_batch_size(args), args.processes) if args.processes > 1 else None
    if args.processes < 2 or problem:
        sys.stderr.write(f"error: {problem or '--processes must be 2 or more.'}\n")
        return 1
    root = Path(args.runs_dir) if args.runs_dir else Path(tempfile.mkdtemp(prefix="ddp-check-"))
    rows = []
    for seed in args.seeds:
        flags = ["--preset", args.preset, "--data", args.data, "--device", args.device, "--seed", str(seed),
                 *(["--epochs", str(args.epochs)] if args.epochs else [])]
        one = train_once([sys.executable, "-m", "core.train", *flags], root / f"seed{seed}-1")
        team = train_once(distributed.torchrun_command(args.processes, flags), root / f"seed{seed}-{args.processes}")
        rows.append((seed, one, team))
        sys.stderr.write(f"seed {seed}: 1 process {_acc(one)}, {args.processes} processes {_acc(team)}\n")
    sys.stdout.write(f"{args.preset} on {args.data}, device {args.device}, "
                     f"{args.epochs or preset_config(args.preset).epochs} epochs\n\n")
    sys.stdout.write(table(rows, args.processes))
    if not args.runs_dir:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if all(one.error is None and team.error is None for _, one, team in rows) else 1


def _batch_size(args: argparse.Namespace) -> int:
    return preset_config(args.preset).batch_size


if __name__ == "__main__":
    raise SystemExit(main())
