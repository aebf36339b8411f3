"""`python -m core.bench`: how fast and how accurate the recipes are, measured through the engine itself.

Two modes, one table each (markdown on stdout; `--out PATH` also writes PATH.md and PATH.json):

- default ("gpu" mode, on `--device`, auto = cuda when there is one): a row per (model, recipe), several
  seeds each (`--seeds`): the best-gpu fastnet, the quick demo, the notebook's ELU ConvNet trained by the
  engine, the same ELU ConvNet trained "the tutorial way" (ImageFolder + DataLoader with 4 workers and a
  plain loop, for the side-by-side ratio) and a standard ResNet-18 recipe.
- `--cpu` (= `--mode cpu`): the laptop goals. The quick-demo preset exactly as the dashboard offers it,
  trained twice per seed: from the command line (core.engine.start_run in the main thread, wall clock from
  the call to the completed run) and from the dashboard's JobManager in a background thread while the
  main thread reads the run folder every second like the live page does.

Engine rows train with `start_run` into a temporary runs folder (`--runs-dir` keeps them), so the figures
are what users get. Training seconds come from the run's own records: the per-epoch "seconds" of its val
records plus the "seconds" of test_summary.json (the test evaluation, with TTA when the recipe has it).
Loading the data from disk (the decode cache, or extracting the archive for the tutorial way) and the
untimed warm-up run (CUDA context, cuDNN and torch.compile start-up) are reported in their own columns.

Timings on a shared machine are only as good as its idle time: every run records how many cores other
processes kept busy meanwhile (Linux /proc/stat less this process's own CPU time), and the table shows the
largest per row; the JSON also keeps the 1-minute load average each run started under.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import os
import platform
import resource
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from core import runs, views
from core.config import TrainConfig
from core.data import DataError, load_dataset
from core.jobs import JobManager
from core.models import get_model
from core.recipes import PRESETS
from core.device import describe_device, resolve_device, synchronize
from core.engine import start_run

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SHARED_ARCHIVE = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
POLL_S = 1.0  # the watched run is read every second (the live page itself refreshes every 1.5 s)
CPU_DEMO_BUDGET_S = 300.0  # goal: the quick demo finishes within 5 minutes on a 2-core CPU
CPU_DEMO_TARGET_ACC = 0.75
WATCHED_MAX_SLOWDOWN = 1.05

# ---------------------------------------------------------------------------------------------
# Rows: (model, recipe) pairs
# ---------------------------------------------------------------------------------------------

# A standard ResNet-18 recipe (not a speed record): Nesterov SGD, one-cycle rate, 4-pixel crops and
# random flips, 30 epochs; expected about 94-95% on the official images (not measured here).
RESNET18_STANDARD = dict(
    model="resnet18", optimizer="sgd", lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4,
    schedule="onecycle", warmup_epochs=2.0, epochs=30, batch_size=512, label_smoothing=0.0,
    crop_padding=4, flip="random", cutout=0, tta=False, ema=0.0)

# The tutorial way's fixed settings: the notebook recipe in a plain PyTorch loop.
TUTORIAL = dict(model="elu-convnet", lr=1e-3, batch_size=250, epochs=20, crop_padding=4)
TUTORIAL_MEAN = (0.4914, 0.4822, 0.4465)  # the usual hard-coded CIFAR-10 constants of tutorials
TUTORIAL_STD = (0.2470, 0.2435, 0.2616)


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
    Row("resnet18", "resnet18, standard recipe", lambda: {**RESNET18_STANDARD, "val_fraction": 0.0}),
)}
CPU_ROWS = ("quick-demo",)  # presets the --cpu mode measures, trained exactly as the preset says


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------

@dataclass
class Measurement:
    """One training run: its accuracy and where its time went."""
    seed: int
    test_acc: float | None = None
    train_s: float | None = None  # epochs + final test evaluation, from the run's records
    test_s: float | None = None
    images_per_s: float | None = None  # training images per second over all epochs
    wall_s: float | None = None  # the call (start_run / submit) to the completed run
    peak_mib: float | None = None
    load_avg: float | None = None  # 1-minute load average when the run started
    others_cpu: float | None = None  # cores other processes kept busy during the run (contention)
    polls: int = 0  # reads of the run folder during a watched run
    error: str | None = None


@dataclass
class RowResult:
    key: str
    title: str
    model: str
    how: str  # "engine", "tutorial", "command line", "dashboard (watched)"
    settings: dict[str, Any]
    target: str = ""
    load_s: float | None = None  # disk to memory: decode cache, or archive extraction
    warmup_s: float | None = None  # one untimed 1-epoch run first (CUDA/cuDNN/compile start-up)
    runs: list[Measurement] = field(default_factory=list)

    def values(self, name: str) -> list[float]:
        return [getattr(m, name) for m in self.runs if m.error is None and getattr(m, name) is not None]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for name in ("test_acc", "train_s", "images_per_s", "wall_s", "peak_mib"):
            out[f"{name}_mean"], out[f"{name}_std"] = mean_std(self.values(name))
        return out


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def peak_memory_mib(device: torch.device) -> float:
    """Peak allocated memory on CUDA since the last reset; on CPU the process's peak RSS so far."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this platform
        return None


def _cpu_counters() -> tuple[float, float, float] | None:
    """(CPU seconds all cores were busy since boot, CPU seconds of this process and its reaped children,
    monotonic now); None where /proc/stat does not exist (not Linux)."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal: busy is all but idle and iowait
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    own = sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))
    return busy, own, time.monotonic()


class Contention:
    """How many cores other processes kept busy over an interval: the honest caveat on a shared machine's
    timings (the load average cannot tell a run's own threads from other people's)."""

    def __init__(self) -> None:
        self.start = _cpu_counters()

    def others(self) -> float | None:
        end = _cpu_counters()
        if self.start is None or end is None or end[2] <= self.start[2]:
            return None
        busy, own, wall = (e - s for e, s in zip(end, self.start))
        return max(0.0, (busy - own) / wall)


def measure_run_dir(run_dir: Path, m: Measurement) -> Measurement:
    """Fill accuracy and timings from the run's own records (val records carry per-epoch seconds)."""
    status = runs.read_json(run_dir / "status.json") or {}
    if status.get("state") != "completed":
        m.error = status.get("error") or f"the run ended {status.get('state')!r}"
        return m
    epochs = [r for r in runs.read_metrics(run_dir) if r["kind"] == "val"]
    test = runs.read_json(run_dir / "test_summary.json") or {}
    epoch_s = sum(r["seconds"] for r in epochs)
    images = sum(r["images_per_s"] * r["seconds"] for r in epochs if r.get("images_per_s"))
    m.test_acc, m.test_s = test.get("accuracy"), test.get("seconds", 0.0)
    m.train_s = epoch_s + m.test_s
    m.images_per_s = images / epoch_s if epoch_s > 0 else None
    return m


# ---------------------------------------------------------------------------------------------
# Engine runs: command line and dashboard
# ---------------------------------------------------------------------------------------------

def train_unwatched(cfg: TrainConfig, runs_dir: Path, device: torch.device, seed: int) -> Measurement:
    """The command-line way: core.engine.start_run in this thread."""
    m = Measurement(seed=seed, load_avg=load_average())
    reset_peak_memory(device)
    contention, start = Contention(), time.perf_counter()
    result = start_run(cfg, runs_dir, name=f"bench-{cfg.model}-s{seed}", device=device)
    m.wall_s, m.others_cpu = time.perf_counter() - start, contention.others()
    m.peak_mib = peak_memory_mib(device)
    return measure_run_dir(result.run_dir, m)


def read_like_the_live_page(run_dir: Path) -> None:
    """One refresh of the live page, less the drawing: the run summary, every metric record (re-read each
    time, which the page itself avoids while the file is unchanged), the progress line and the curves table."""
    summary = runs.summarize_run(run_dir)
    metrics = runs.read_metrics(run_dir)
    views.progress_info(summary.status, summary.state)
    views.current_lr(metrics)
    views.latest(metrics, "val", "val_acc")
    views.live_curves(metrics, smoothing=0.6)


def train_watched(cfg: TrainConfig, runs_dir: Path, device: torch.device, seed: int,
                  poll_s: float = POLL_S) -> Measurement:
    """The dashboard way: a JobManager worker thread trains while this thread reads the run folder
    every `poll_s` seconds as the live page does."""
    m = Measurement(seed=seed, load_avg=load_average())
    reset_peak_memory(device)
    manager = JobManager(runs_dir)
    contention, start = Contention(), time.perf_counter()
    run_dir = runs.run_path(runs_dir, manager.submit(cfg, name=f"bench-{cfg.model}-s{seed}-watched"))
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


# ---------------------------------------------------------------------------------------------
# The tutorial way: ImageFolder + DataLoader + a plain loop
# ---------------------------------------------------------------------------------------------

class ArrayImages(torch.utils.data.Dataset):
    """Images held as a uint8 array, handed out as PIL images like torchvision's CIFAR10 dataset."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, classes: Sequence[str], transform: Callable):
        self.images, self.labels, self.classes, self.transform = images, labels, list(classes), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def _image_folder_root(folder: Path) -> Path:
    """The folder holding train/ and test/ (an archive may wrap them in one more folder)."""
    for path in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]:
        if (path / "train").is_dir() and (path / "test").is_dir():
            return path
    raise DataError(f"No train/ and test/ folders under {folder}; the data must be in ImageFolder layout.")


def tutorial_datasets(source: str, scratch: Path) -> tuple[Any, Any, float]:
    """(train, test, load seconds): ImageFolder over the files for a folder or an archive (extracted into
    `scratch`, which is the disk-load time), in-memory PIL images for 'cifar10' and 'synthetic'."""
    from torchvision import datasets, transforms

    normalize = transforms.Normalize(TUTORIAL_MEAN, TUTORIAL_STD)
    train_tf = transforms.Compose([transforms.RandomCrop(32, padding=TUTORIAL["crop_padding"]),
                                   transforms.RandomHorizontalFlip(), transforms.ToTensor(), normalize])
    test_tf = transforms.Compose([transforms.ToTensor(), normalize])
    start = time.perf_counter()
    path = Path(source).expanduser()
    if source.lower() in ("cifar10", "synthetic"):
        data = load_dataset(source)
        train = ArrayImages(data.train.images, data.train.labels, data.classes, train_tf)
        test = ArrayImages(data.test.images, data.test.labels, data.classes, test_tf)
        return train, test, time.perf_counter() - start
    if path.is_file():
        folder = scratch / "extracted"
        if path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                archive.extractall(folder)
        else:
            with tarfile.open(path, "r:*") as archive:
                archive.extractall(folder, filter="data")
        path = folder
    root = _image_folder_root(path)
    train = datasets.ImageFolder(str(root / "train"), transform=train_tf)
    test = datasets.ImageFolder(str(root / "test"), transform=test_tf)
    return train, test, time.perf_counter() - start


def train_tutorial_way(train_set, test_set, device: torch.device, seed: int, epochs: int,
                       workers: int) -> Measurement:
    """The notebook recipe as a tutorial writes it: DataLoader workers decode and augment every image of
    every epoch on the CPU, float32, one optimiser step per batch, then a plain test loop."""
    m = Measurement(seed=seed, load_avg=load_average())
    reset_peak_memory(device)
    contention, start = Contention(), time.perf_counter()
    torch.manual_seed(seed)
    pin = device.type == "cuda"
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=TUTORIAL["batch_size"], shuffle=True,
                                               num_workers=workers, pin_memory=pin)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000, num_workers=workers, pin_memory=pin)
    model = get_model(TUTORIAL["model"], len(test_set.classes)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=TUTORIAL["lr"])
    criterion = nn.CrossEntropyLoss()
    epoch_s = 0.0
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        for x, y in train_loader:
            x, y = x.to(device, non_blocking=pin), y.to(device, non_blocking=pin)  # (B, 3, 32, 32), (B,)
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        synchronize(device)
        epoch_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in test_loader:
            correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
    m.test_s = time.perf_counter() - t0
    m.test_acc = correct / len(test_set)
    m.train_s = epoch_s + m.test_s
    m.images_per_s = epochs * len(train_set) / epoch_s if epoch_s > 0 else None
    m.wall_s, m.others_cpu = time.perf_counter() - start, contention.others()
    m.peak_mib = peak_memory_mib(device)
    return m


# ---------------------------------------------------------------------------------------------
# Smoke runs: a small ImageFolder copy of the data (--limit)
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Running the table
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------

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
        + (f", first load {opts.first_load_s:.1f} s" if opts.first_load_s is not None else "") + f"; mode: {opts.mode}; seeds: {opts.seeds}"
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
               "data": opts.source or opts.data, "limit": opts.limit, "seeds": opts.seeds, "rows": [r.to_dict() for r in results],
               "verdicts": verdicts(results, opts.mode, describe_device(opts.device))}
    path.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def default_data() -> str:
    return str(SHARED_ARCHIVE) if SHARED_ARCHIVE.is_file() else "cifar10"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.bench", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Measure accuracy and speed of the recipes through the training engine.")
    parser.add_argument("--data", default=default_data(), help="data source: archive, folder, cifar10 or synthetic")
    parser.add_argument("--mode", choices=("gpu", "cpu"), default="gpu",
                        help="gpu: the table of rows on --device; cpu: the quick demo on the CPU, command line vs dashboard")
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


if __name__ == "__main__":
    raise SystemExit(main())
