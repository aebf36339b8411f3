"""What the bench trains: rows of (model, recipe) taken from core.training.recipes, run through the engine the way
users run it (command line, or a dashboard job watched like the live page does)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from core.analysis.curves import current_lr, latest, live_curves
from core.rundir.progress import run_progress

from core.rundir import catalog
from core.bench.measure import (Contention, Measurement, RowResult, load_average, measure_run_dir, peak_memory_mib,
                                reset_peak_memory)
from core.bench.tutorial import TUTORIAL, train_tutorial_way, tutorial_datasets
from core.rundir.config import TrainConfig
from core.data import load_dataset
from core.training.engine import start_run
from core.jobs import JobManager
from core.training.recipes import PRESETS

log = logging.getLogger(__name__)

POLL_S = 1.0  # the watched run is read every second (the live page itself refreshes every 1.5 s)


@dataclass(frozen=True)
class Row:
    key: str  # what --rows names
    title: str
    settings: Callable[[], dict[str, Any]]  # TrainConfig fields (read at run time: presets may change)
    target: str = ""  # the goal this row answers, in words
    engine: bool = True  # False: the tutorial-way loop


def _preset(name: str, **overrides: Any) -> Callable[[], dict[str, Any]]:
    return lambda: {**PRESETS[name].settings, **overrides}


# In the table every engine row trains on all 50,000 training images (val_fraction=0), like the tutorial
# way and airbench: the time is data on the device to the final test accuracy, nothing else.
ROWS: dict[str, Row] = {row.key: row for row in (
    Row("best-gpu", "fastnet, best-gpu preset", _preset("best-gpu", val_fraction=0.0),
        "H100: >=90.7% in <=2.5 s"),
    Row("quick-demo", "fastnet-small, quick-demo preset", _preset("quick-demo", val_fraction=0.0)),
    Row("notebook-classic", "elu-convnet, notebook recipe (engine)", _preset("notebook-classic", val_fraction=0.0),
        "H100: >=75.5% in <=7 s"),
    Row("tutorial-way", "elu-convnet, notebook recipe (ImageFolder + DataLoader)", lambda: dict(TUTORIAL),
        "reference: 75.9% in 70 s on an H100", engine=False),
    Row("resnet18", "resnet18, resnet18-standard preset", _preset("resnet18-standard", val_fraction=0.0)),
)}
CPU_ROWS = ("quick-demo",)  # presets the --cpu mode measures, trained exactly as the preset says


def train_unwatched(cfg: TrainConfig, runs_dir: Path, device: torch.device, seed: int) -> Measurement:
    """The command-line way: core.training.engine.start_run in this thread."""
    m = Measurement(seed=seed, load_avg=load_average())
    reset_peak_memory(device)
    contention, start = Contention(), time.perf_counter()
    result = start_run(cfg, runs_dir, name=f"bench-{cfg.model}-s{seed}", device=device)
    m.wall_s, m.others_cpu = time.perf_counter() - start, contention.others()
    m.peak_mib = peak_memory_mib(device)
    return measure_run_dir(result.run_dir, m)


def read_like_the_live_page(run_dir: Path) -> None:
    """One refresh of the live page, less the drawing and the wording: the run summary, every metric record
    (re-read each time, which the page itself avoids while the file is unchanged), its progress and the curves."""
    summary = catalog.summarize_run(run_dir)
    metrics = catalog.read_metrics(run_dir)
    run_progress(summary.status, summary.state)
    current_lr(metrics)
    latest(metrics, "val", "val_acc")
    live_curves(metrics, smoothing=0.6)


def train_watched(cfg: TrainConfig, runs_dir: Path, device: torch.device, seed: int,
                  poll_s: float = POLL_S) -> Measurement:
    """The dashboard way: a JobManager worker thread trains while this thread reads the run folder
    every `poll_s` seconds as the live page does."""
    m = Measurement(seed=seed, load_avg=load_average())
    reset_peak_memory(device)
    manager = JobManager(runs_dir)
    contention, start = Contention(), time.perf_counter()
    run_dir = catalog.run_path(runs_dir, manager.submit(cfg, name=f"bench-{cfg.model}-s{seed}-watched"))
    while True:
        read_like_the_live_page(run_dir)
        m.polls += 1
        if manager.wait(timeout=poll_s):  # returns as soon as the job ends: no sleep added to the wall time
            break
    m.wall_s, m.others_cpu = time.perf_counter() - start, contention.others()
    m.peak_mib = peak_memory_mib(device)
    return measure_run_dir(run_dir, m)


def time_load(source: str) -> float:
    """Seconds to load the source from disk (the decode cache after the first time)."""
    start = time.perf_counter()
    load_dataset(source)
    return time.perf_counter() - start



def write_subset_folder(source: str, limit: int, folder: Path, seed: int = 0) -> str:
    """Write at most `limit` train and `limit` test images of `source` as PNGs in ImageFolder layout, so
    the engine and the tutorial way both read the same small set through their ordinary paths."""
    from PIL import Image

    data = load_dataset(source)
    rng = np.random.default_rng(seed)
    for split, images in (("train", data.train), ("test", data.test)):
        keep = np.sort(rng.permutation(len(images))[:limit])
        for i in keep:
            target = folder / split / data.classes[images.labels[i]]
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images.images[i]).save(target / f"{i:05d}.png")
    return str(folder)



@dataclass(frozen=True)
class Options:
    mode: str
    data: str  # what the runs read (a small ImageFolder copy under --limit)
    rows: tuple[str, ...]
    seeds: int
    device: torch.device
    epochs: int | None
    workers: int
    warmup: bool
    compile: bool
    source: str = ""  # the data as the user named it
    limit: int | None = None
    first_load_s: float | None = None  # the bench's own first load (decodes an archive once into the cache)


def engine_config(base: dict[str, Any], opts: Options, seed: int, **extra: Any) -> TrainConfig:
    """The row's settings on this bench's data and device, with the seed and any smoke-check overrides."""
    settings = {**base, "data": opts.data, "device": str(opts.device), "seed": seed, **extra}
    if opts.epochs is not None:
        settings["epochs"] = opts.epochs
        settings["warmup_epochs"] = min(settings.get("warmup_epochs", 0.0), float(opts.epochs))
    if opts.compile:
        settings["compile"] = True
    return TrainConfig(**settings)


def run_engine_row(row: Row, opts: Options, runs_dir: Path) -> RowResult:
    base = row.settings()
    cfg = engine_config(base, opts, 0)
    result = RowResult(row.key, row.title, cfg.model, "engine", cfg.to_dict(), row.target, load_s=time_load(opts.data))
    if opts.warmup:
        start = time.perf_counter()
        train_unwatched(engine_config(base, opts, 0, epochs=1, warmup_epochs=0.0), runs_dir, opts.device, 0)
        result.warmup_s = time.perf_counter() - start
    for seed in range(opts.seeds):
        log.info("%s: seed %d", row.key, seed)
        result.runs.append(train_unwatched(engine_config(base, opts, seed), runs_dir, opts.device, seed))
    return result


def run_tutorial_row(row: Row, opts: Options, scratch: Path) -> RowResult:
    epochs = opts.epochs if opts.epochs is not None else TUTORIAL["epochs"]
    settings = {**TUTORIAL, "epochs": epochs, "workers": opts.workers, "data": opts.data}
    result = RowResult(row.key, row.title, TUTORIAL["model"], "tutorial", settings, row.target)
    train_set, test_set, result.load_s = tutorial_datasets(opts.data, scratch)
    if opts.warmup:
        start = time.perf_counter()
        train_tutorial_way(train_set, test_set, opts.device, 0, 1, opts.workers)
        result.warmup_s = time.perf_counter() - start
    for seed in range(opts.seeds):
        log.info("%s: seed %d", row.key, seed)
        result.runs.append(train_tutorial_way(train_set, test_set, opts.device, seed, epochs, opts.workers))
    return result


def run_cpu_rows(key: str, opts: Options, runs_dir: Path) -> list[RowResult]:
    """The preset as users get it, from the command line and from the dashboard, seeds interleaved (and the
    order flipped every seed) so a change of machine load hits both alike."""
    base = dict(PRESETS[key].settings)
    cfg0 = engine_config(base, opts, 0)
    load_s = time_load(opts.data)
    title = f"{cfg0.model}, {key} preset"
    cli = RowResult(key, title, cfg0.model, "command line", cfg0.to_dict(), "CPU: >=75% within 300 s wall", load_s)
    dash = RowResult(key, title, cfg0.model, "dashboard (watched)", cfg0.to_dict(),
                     "<=5% slower than the command line", load_s)
    for seed in range(opts.seeds):
        cfg = engine_config(base, opts, seed)
        order = [(cli, train_unwatched), (dash, train_watched)]
        for target, how in (order if seed % 2 == 0 else order[::-1]):
            log.info("%s (%s): seed %d", key, target.how, seed)
            target.runs.append(how(cfg, runs_dir, opts.device, seed))
    return [cli, dash]


def run_bench(opts: Options, runs_dir: Path, scratch: Path) -> list[RowResult]:
    results = []
    for key in opts.rows:
        if opts.mode == "cpu":
            results += run_cpu_rows(key, opts, runs_dir)
        elif ROWS[key].engine:
            results.append(run_engine_row(ROWS[key], opts, runs_dir))
        else:
            results.append(run_tutorial_row(ROWS[key], opts, scratch))
    return results
