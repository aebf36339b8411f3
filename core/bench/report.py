"""The bench's report: a markdown table, one verdict per goal, and the same as JSON."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
from pathlib import Path
from typing import Sequence

import torch

from core.bench.measure import RowResult, mean_std
from core.bench.rows import Options
from core.training.device import describe_device

CPU_DEMO_BUDGET_S = 300.0  # goal: the quick demo finishes within 5 minutes on a 2-core CPU
CPU_DEMO_TARGET_ACC = 0.75
WATCHED_MAX_SLOWDOWN = 1.05

COLUMNS = ("row", "model", "how", "seeds", "test acc %", "train s", "img/s", "wall s", "load s", "warm-up s",
           "peak MiB", "others' CPU")


def _fmt(mean: float | None, std: float | None, scale: float = 1.0, digits: int = 1) -> str:
    if mean is None:
        return "-"
    text = f"{mean * scale:,.{digits}f}"
    return text + (f" ± {std * scale:,.{digits}f}" if std else "")


def table_rows(results: Sequence[RowResult]) -> list[list[str]]:
    out = []
    for r in results:
        ok = [m for m in r.runs if m.error is None]
        others = [m.others_cpu for m in r.runs if m.others_cpu is not None]
        seeds = f"{len(ok)}" + (f" ({len(r.runs) - len(ok)} failed)" if len(ok) < len(r.runs) else "")
        out.append([
            r.key, r.model, r.how, seeds,
            _fmt(*mean_std(r.values("test_acc")), scale=100, digits=2),
            _fmt(*mean_std(r.values("train_s")), digits=2),
            _fmt(*mean_std(r.values("images_per_s")), digits=0),
            _fmt(*mean_std(r.values("wall_s")), digits=1),
            _fmt(r.load_s, None, digits=2), _fmt(r.warmup_s, None, digits=1),
            _fmt(max(r.values("peak_mib"), default=None), None, digits=0),
            _fmt(max(others, default=None), None, digits=2),
        ])
    return out


def markdown_table(results: Sequence[RowResult]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(results)]
    return "\n".join(lines)


def verdicts(results: Sequence[RowResult], mode: str, device_name: str) -> list[str]:
    """One line per goal the table answers, with the numbers it rests on."""
    by = {(r.key, r.how): r for r in results}
    lines = []
    if mode == "cpu":
        for (key, how), cli in by.items():
            dash = by.get((key, "dashboard (watched)"))
            if how != "command line":
                continue
            acc, wall = mean_std(cli.values("test_acc"))[0], max(cli.values("wall_s"), default=None)
            if acc is not None and wall is not None:
                met = acc >= CPU_DEMO_TARGET_ACC and wall <= CPU_DEMO_BUDGET_S
                lines.append(f"{key} on CPU: mean test accuracy {acc:.2%} (target >= {CPU_DEMO_TARGET_ACC:.0%}), "
                             f"slowest wall {wall:.1f} s (target <= {CPU_DEMO_BUDGET_S:.0f} s): "
                             f"{'met' if met else 'missed'}.")
            if dash is not None and cli.values("wall_s") and dash.values("wall_s"):
                ratio = statistics.fmean(dash.values("wall_s")) / statistics.fmean(cli.values("wall_s"))
                train_ratio = statistics.fmean(dash.values("train_s")) / statistics.fmean(cli.values("train_s"))
                polls = sum(m.polls for m in dash.runs)
                lines.append(f"{key} watched from the dashboard vs command line: wall x{ratio:.3f}, training "
                             f"seconds x{train_ratio:.3f} ({polls} folder reads; target <= x{WATCHED_MAX_SLOWDOWN}): "
                             f"{'met' if ratio <= WATCHED_MAX_SLOWDOWN else 'missed'}.")
        return lines
    engine, tutorial = by.get(("notebook-classic", "engine")), by.get(("tutorial-way", "tutorial"))
    if engine and tutorial and engine.values("train_s") and tutorial.values("train_s"):
        speedup = statistics.fmean(tutorial.values("train_s")) / statistics.fmean(engine.values("train_s"))
        lines.append(f"elu-convnet: the engine trains the notebook recipe x{speedup:.1f} faster than the tutorial way.")
    for r in results:
        if r.target:
            acc, secs = mean_std(r.values("test_acc"))[0], mean_std(r.values("train_s"))[0]
            judged = "H100" in device_name
            lines.append(f"{r.key}: {_fmt(acc, None, 100, 2)}% in {_fmt(secs, None, 1, 2)} s; target {r.target}"
                         + ("" if judged else " (not an H100 here: not judged)"))
    return lines


def header(opts: Options, argv: Sequence[str]) -> list[str]:
    return [
        f"device: {describe_device(opts.device)}; torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        f"date: {dt.date.today().isoformat()}; data: {opts.source or opts.data}"
        + (f" (at most {opts.limit} train and test images)" if opts.limit else "")
        + (f", first load {opts.first_load_s:.1f} s" if opts.first_load_s is not None else "")
        + f"; mode: {opts.mode}; seeds: {opts.seeds}"
        + (f"; epochs overridden to {opts.epochs}" if opts.epochs is not None else ""),
        "command: python -m core.bench " + " ".join(argv),
    ]


def report(results: Sequence[RowResult], opts: Options, argv: Sequence[str]) -> str:
    notes = ["train s: the epochs plus the final test evaluation (with TTA where the recipe has it), from the "
             "run's records; wall s: the call to the completed run; load s and warm-up s are not in train s.",
             "peak MiB: " + ("torch.cuda.max_memory_allocated per run" if opts.device.type == "cuda"
                             else "the process's peak resident memory so far (getrusage maxrss)")
             + "; others' CPU: cores kept busy by other processes during a run (/proc/stat less this process), "
             "the largest over the row's runs: timings are only clean near 0."]
    parts = header(opts, argv) + ["", markdown_table(results), ""] + notes
    lines = verdicts(results, opts.mode, describe_device(opts.device))
    return "\n".join(parts + ([""] + [f"- {line}" for line in lines] if lines else [])) + "\n"


def write_outputs(path: Path, text: str, results: Sequence[RowResult], opts: Options, argv: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".md").write_text(text, encoding="utf-8")
    payload = {"header": header(opts, argv), "mode": opts.mode, "device": describe_device(opts.device),
               "data": opts.source or opts.data, "limit": opts.limit, "seeds": opts.seeds,
               "rows": [r.to_dict() for r in results],
               "verdicts": verdicts(results, opts.mode, describe_device(opts.device))}
    path.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
