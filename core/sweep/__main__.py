"""`python -m core.sweep`: create a sweep, work on it (on any machine sharing the runs folder), follow it, stop it.

    python -m core.sweep create --name "lr and wd" --preset quick-demo --epochs 8 \\
        --vary lr=0.01:1:log --vary weight_decay=0.00001:0.001:log --trials 20
    python -m core.sweep work --sweep <sweep-id> --device cuda:0      # one per GPU, on any machine
    python -m core.sweep status --sweep <sweep-id>
    python -m core.sweep stop --sweep <sweep-id>

Exit status: 0 done, 1 bad input or failure, 130 stopped (Ctrl-C).
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Sequence

import optuna

from core.rundir import catalog, files
from core.sweep.results import SweepResults, TrialStatus, read_results
from core.sweep.space import SweepError, parse_param, tunable_fields
from core.sweep.study import PRUNERS, SAMPLERS, create_sweep, list_sweeps, load_sweep
from core.sweep.worker import work
from core.train import add_config_flags, config_from_args
from core.training.recipes import PRESETS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core.sweep", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="make a sweep: base recipe, settings to vary, trial count")
    create.add_argument("--name", required=True, help="display name; trials are named '<name> #<trial>'")
    create.add_argument("--preset", choices=sorted(PRESETS), help="base recipe; the config flags override it")
    create.add_argument("--vary", action="append", default=[], metavar="FIELD=LOW:HIGH[:log] | FIELD=A,B,C",
                        help=f"a setting to vary (repeat the flag); one of: {', '.join(tunable_fields())}")
    create.add_argument("--trials", type=int, default=20, help="how many trials the sweep catalog, over all workers")
    create.add_argument("--sampler", choices=SAMPLERS, default="tpe")
    create.add_argument("--pruner", choices=PRUNERS, default="median",
                        help="median: stop a trial whose validation accuracy is below the median of earlier "
                             "trials at the same epoch")
    create.add_argument("--storage", help="an Optuna storage URL shared by several machines (e.g. "
                                          "postgresql://user@host/db); default: a journal file in the sweep folder")
    add_config_flags(create)
    worker = commands.add_parser("work", help="train trials of a sweep until it has all of them")
    worker.add_argument("--sweep", required=True, metavar="SWEEP_ID")
    worker.add_argument("--device", help="where this worker trains (default: the base recipe's device)")
    for sub in (commands.add_parser("status", help="the trials so far and the best one"),
                commands.add_parser("stop", help="ask every worker of the sweep to stop")):
        sub.add_argument("--sweep", required=True, metavar="SWEEP_ID")
    commands.add_parser("list", help="every sweep in the runs folder")
    for sub in commands.choices.values():
        sub.add_argument("--runs-dir", default=str(catalog.default_runs_dir()), help="folder holding the run folders")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.INFO if args.command == "work" else optuna.logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except (SweepError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {files.disk_error_sentence(exc, then='try again')}.", file=sys.stderr)
        return 1


def _create(args: argparse.Namespace) -> int:
    base = config_from_args(args)
    if args.feature_map is None:  # each trial's test-set map would cost about a short trial's time: off unless asked
        base = base.replace(feature_map=False)
    space = [parse_param(text) for text in args.vary]
    sweep = create_sweep(args.runs_dir, args.name, base, space, args.trials, args.sampler, args.pruner, args.storage)
    print(sweep.sweep_id)
    print(f"work on it with: python -m core.sweep work --sweep {sweep.sweep_id} --runs-dir {args.runs_dir}",
          file=sys.stderr)
    return 0


def _work(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    trained = work(args.runs_dir, args.sweep, args.device, stop=stop)
    print(f"this worker trained {trained} trial(s) of sweep {args.sweep}", file=sys.stderr)
    return 130 if stop.is_set() and not load_sweep(args.runs_dir, args.sweep).stop_requested() else 0


def _status(args: argparse.Namespace) -> int:
    print(status_text(read_results(load_sweep(args.runs_dir, args.sweep), args.runs_dir)))
    return 0


def status_text(results: SweepResults) -> str:
    sweep, lines = results.sweep, []
    lines.append(f"{sweep.name} ({sweep.sweep_id}): {len(results.trials)} of {sweep.trials} trials, "
                 f"{results.count(TrialStatus.COMPLETED)} completed, {results.count(TrialStatus.PRUNED)} pruned, "
                 f"{results.count(TrialStatus.FAILED)} failed, {results.count(TrialStatus.RUNNING)} running")
    for t in results.trials:
        value = f"{t.value:.2%}" if t.value is not None else "-"
        params = ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())
        lines.append(f"  #{t.number:<4} {t.state:<10} {value:>7}  epochs {t.epochs_done}/{t.epochs}  {params}  "
                     f"{t.run_id or ''}")
    if results.best is not None:
        lines.append(f"best: trial #{results.best.number}, validation accuracy {results.best.value:.2%}")
    if results.read_only:
        lines.append(results.read_only)
    return "\n".join(lines)


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _stop(args: argparse.Namespace) -> int:
    load_sweep(args.runs_dir, args.sweep).request_stop()
    print(f"asked the workers of {args.sweep} to stop; their current trials end 'stopped'", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    for sweep in list_sweeps(args.runs_dir):
        if sweep.problem:
            print(f"{sweep.sweep_id}  damaged: {sweep.problem}")
            continue
        print(f"{sweep.sweep_id}  {sweep.name}  {sweep.trials} trials  "
              f"{'; '.join(p.describe() for p in sweep.space)}")
    return 0


COMMANDS = {"create": _create, "work": _work, "status": _status, "stop": _stop, "list": _list}

if __name__ == "__main__":
    raise SystemExit(main())
