"""`python -m core.train`: train headless, e.g. on a GPU server; the dashboard shows the run like its own.

One flag per TrainConfig field (`--batch-size 512`, `--tta/--no-tta`), plus `--preset`, `--name`,
`--runs-dir`, `--resume RUN_ID`, `--restart RUN_ID` and `--queued RUN_ID`. Ctrl-C stops cleanly: the run
keeps a resumable checkpoint.
`torchrun --nproc_per_node=N -m core.train ...` trains one run with N processes (core.training.distributed): rank 0
makes and writes the run folder and alone prints; the others learn the run from it.
Exit status: 0 completed, 1 failed or bad input, 130 stopped.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

from core.data import load_dataset
from core.rundir import catalog, files, lifecycle
from core.rundir.config import TrainConfig
from core.rundir.state import RunState
from core.training import distributed
from core.training.device import resolve_device
from core.training.engine import RunResult, checked_run, restart_run, resume_run, train, train_queued
from core.training.models import check_model_name
from core.training.recipes import PRESETS, preset_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.train", description="Train a CIFAR-10 classifier into a run folder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), help="start from a named recipe; flags override it")
    parser.add_argument("--name", help="display name of the run")
    parser.add_argument("--runs-dir", default=str(catalog.default_runs_dir()), help="folder holding the run folders")
    parser.add_argument("--resume", metavar="RUN_ID", help="continue a stopped or interrupted run from its last checkpoint")
    parser.add_argument("--restart", metavar="RUN_ID",
                        help="train a run that ended before its first checkpoint again, with its own settings")
    parser.add_argument("--queued", metavar="RUN_ID",
                        help="train a run the dashboard queued, from its last checkpoint if it has one (how the "
                             "dashboard hands a run to torchrun)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_flags(parser)
    return parser


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (`--batch-size 512`, `--tta/--no-tta`), each defaulting to None (not given)."""
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": f"(default: {getattr(defaults, f.name)!r})"}
        if f.type == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = {"int": int, "float": float, "str": str}[f.type]
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
        parser.add_argument(flag, **kwargs)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The settings the flags ask for, on top of the preset's; ValueError in one sentence for a bad one (a model
    name no architecture is registered under included: the config itself does not know the registry)."""
    base = preset_config(args.preset) if args.preset else TrainConfig()
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None}
    cfg = base.replace(**given)
    check_model_name(cfg.model)
    return cfg


class ProgressBar:
    """A one-line bar on stderr fed by the engine's status updates, plus a line per finished epoch."""

    def __init__(self, run_dir, stream=sys.stderr, width: int = 30):
        self.run_dir, self.stream, self.width, self.epoch = run_dir, stream, width, None

    def __call__(self, status: dict[str, Any]) -> None:
        epoch, epochs = status.get("epoch") or 0, status.get("epochs") or 0
        if self.epoch is not None and epoch > self.epoch:
            self._epoch_line(epoch, epochs)
        self.epoch = epoch
        progress = status.get("progress") or 0.0
        filled = int(self.width * progress)
        eta = status.get("eta_seconds")
        eta_text = f" ETA {format_seconds(eta)}" if isinstance(eta, (int, float)) else ""
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {progress:4.0%} "
                          f"epoch {min(epoch + 1, epochs)}/{epochs} step {status.get('step', 0)}/"
                          f"{status.get('total_steps') or '?'}{eta_text}   ")
        self.stream.flush()

    def _epoch_line(self, epoch: int, epochs: int) -> None:
        vals = [r for r in catalog.read_metrics(self.run_dir) if r["kind"] == "val" and r.get("epoch") == epoch]
        if vals and "val_acc" in vals[-1] and "val_loss" in vals[-1]:
            v = vals[-1]
            speed = f"  {v['images_per_s']:,.0f} img/s" if v.get("images_per_s") is not None else ""
            text = f"val loss {v['val_loss']:.3f}  val acc {v['val_acc']:.2%}{speed}"
        else:
            text = "done"
        self.stream.write(f"\repoch {epoch}/{epochs}: {text}".ljust(self.width + 50) + "\n")


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    speaks = distributed.rank() == 0  # under torchrun only rank 0 prints
    try:
        if distributed.launched():
            run_dir, result = _train_as_team(args, stop)
        elif args.resume or args.restart or args.queued:
            run_id = args.resume or args.restart or args.queued
            run_dir = catalog.run_path(args.runs_dir, run_id)
            bar = None if args.quiet else ProgressBar(run_dir)
            carry_on = resume_run if args.resume else restart_run if args.restart else train_queued
            result = carry_on(args.runs_dir, run_id, stop=stop, on_status=bar)
        else:
            cfg = config_from_args(args)
            resolve_device(cfg.device)  # a missing GPU or bad source fails here, before any folder is made
            run_dir = _new_run(args, cfg)
            result = train(cfg, run_dir, stop=stop, on_status=None if args.quiet else ProgressBar(run_dir))
    except distributed.WriterFailed:  # rank 0 has said why
        return 1
    except ValueError as exc:  # bad flag values, unknown run id: one sentence, nothing touched
        if speaks:
            print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the runs folder cannot be written (full disk, no permission)
        if speaks:
            print(f"error: {files.disk_error_sentence(exc)}.", file=sys.stderr)
        return 1
    return _report(result, run_dir) if speaks else EXIT_CODES.get(result.state, 1)


EXIT_CODES = {RunState.COMPLETED: 0, RunState.STOPPED: 130}


def _new_run(args: argparse.Namespace, cfg: TrainConfig) -> Path:
    """Check the data source, then make the run folder (nothing is made for a source that cannot be read)."""
    load_dataset(cfg.data, cfg.data_dir or None)
    run_dir = lifecycle.create_run(args.runs_dir, cfg.to_dict(), name=args.name)
    print(f"run {run_dir.name} in {run_dir.parent}", file=sys.stderr)
    return run_dir


def _train_as_team(args: argparse.Namespace, stop: threading.Event) -> tuple[Path, RunResult]:
    """One rank of a torchrun team: every rank checks the settings (and an existing run) before any rank
    writes, then joins; rank 0 makes or resets the run folder and the others learn it from rank 0."""
    existing, cfg, resume = team_plan(args)
    device = distributed.rank_device(resolve_device(cfg.device))
    team = distributed.Team.join(device)
    try:
        if existing is None:
            run_dir = team.from_writer(lambda: _new_run(args, cfg))
        else:
            run_dir = existing
            if args.restart:
                team.from_writer(lambda: lifecycle.reset_for_restart(run_dir))
        bar = ProgressBar(run_dir) if team.is_writer and not args.quiet else None
        return run_dir, train(cfg, run_dir, stop=stop, device=device, resume=resume, on_status=bar, team=team)
    finally:
        team.close()


def team_plan(args: argparse.Namespace) -> tuple[Path | None, TrainConfig, bool]:
    """(the run's folder, or None for a new run; its settings; whether to resume from last.pt), checked by
    reading only, as every rank does before the ranks join. ValueError says why not, in one sentence."""
    run_id = args.resume or args.restart or args.queued
    how = "resume" if args.resume else "restart" if args.restart else "queued"
    run_dir, cfg = checked_run(args.runs_dir, run_id, how) if run_id else (None, config_from_args(args))
    problem = distributed.batch_size_refusal(cfg.batch_size, distributed.world_size())
    if problem:
        raise ValueError(problem)
    resume = bool(args.resume) or bool(args.queued and catalog.has_checkpoint(run_dir))
    return run_dir, cfg, resume


def _report(result: RunResult, run_dir: Path) -> int:
    print(file=sys.stderr)
    if result.state == RunState.COMPLETED:
        best = f", best validation accuracy {result.best_val_acc:.2%}" if result.best_val_acc is not None else ""
        print(f"completed: test accuracy {result.test_acc:.2%}{best} ({run_dir})")
        return 0
    if result.state == RunState.STOPPED:
        print(f"stopped after {result.epochs_done} epochs; resume with --resume {run_dir.name}")
        return 130
    print(f"failed: {result.error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
