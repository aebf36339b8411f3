"""`python -m dashboard.bench_sweeps`: how long the Sweeps page takes to run its script on many sweeps.

Two runs folders are made in a temporary folder (nothing is trained): 60 sweeps that each vary 12 settings
(each sweep's file checked when read), and one sweep of 1,000 ended trials, each a run folder of its own
(the page reads every trial's run). The page is opened in Streamlit's AppTest, as a browser session would
open it, in a fresh process (so nothing the fixtures read is cached), and its script is timed on its first
run and on the refreshes after it. AppTest measures the server's script time, not the browser's drawing.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import optuna
from streamlit.testing.v1 import AppTest

from core.rundir import lifecycle
from core.rundir.config import TrainConfig
from core.rundir.state import RunState
from core.sweep import Param, create_sweep
from core.sweep.study import JOURNAL_FILE

APP = Path(__file__).resolve().parent / "app.py"
BASE = dict(data="synthetic", model="tutorial-cnn", epochs=2, batch_size=100, optimizer="adam", schedule="constant",
            warmup_epochs=0.0, precision="fp32", device="cpu", feature_map=False, val_fraction=0.1)
TWELVE = [Param("lr", 0.001, 0.1, True), Param("momentum", 0.8, 0.99), Param("weight_decay", 1e-5, 1e-2, True),
          Param("nesterov", choices=(True, False)), Param("optimizer", choices=("sgd", "adam")),
          Param("label_smoothing", 0.0, 0.3), Param("batch_size", 50, 200, True), Param("epochs", 1, 4),
          Param("crop_padding", 0, 4), Param("cutout", 0, 16), Param("seed", 0, 1000), Param("ema", 0.0, 0.999)]


def many_sweeps(runs_dir: Path, count: int = 60) -> None:
    """`count` sweeps of 12 settings: one created (its space checked), the others copies under new ids."""
    first = create_sweep(runs_dir, "twelve", TrainConfig(**BASE), TWELVE, trials=20)
    for k in range(count - 1):
        sweep_id = f"{first.sweep_id[:-4]}{k:04d}"
        copy = shutil.copytree(first.path, first.path.parent / sweep_id)
        journal = copy / JOURNAL_FILE
        journal.write_text(journal.read_text().replace(first.sweep_id, sweep_id))


def thousand_trials(runs_dir: Path, trials: int = 1000) -> None:
    """One sweep whose `trials` trials have all completed, each with its run folder and two reported epochs."""
    space = [Param("lr", 0.001, 0.1, True), Param("optimizer", choices=("adam", "sgd"))]
    config = TrainConfig(**BASE)
    sweep = create_sweep(runs_dir, "thousand", config, space, trials=trials, sampler="random", pruner="none")
    study, rng = sweep.open_study(), random.Random(0)
    for n in range(trials):
        trial = study.ask()
        for param in space:
            param.suggest(trial)
        run = lifecycle.create_run(runs_dir, config.to_dict(), name=f"thousand #{n}", sweep=(sweep.sweep_id, n))
        trial.set_user_attr("run_id", run.name)
        accuracy = rng.random()
        for epoch in (1, 2):
            trial.report(accuracy * epoch / 2, epoch)
        lifecycle.update_status(run, state=RunState.COMPLETED, epoch=2, epochs=2, best_val_acc=accuracy, progress=1.0)
        study.tell(trial, accuracy)


def time_page(runs_dir: Path, refreshes: int) -> tuple[float, list[float]]:
    """Seconds of the Sweeps page's first script run after opening it, and of each refresh after that."""
    os.environ["CIFAR_RUNS_DIR"] = str(runs_dir)
    at = AppTest.from_file(str(APP), default_timeout=600)
    at.run()
    at.switch_page("views/sweeps.py")
    times = []
    for _ in range(refreshes + 1):
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        if at.exception:
            raise SystemExit(f"The Sweeps page raised: {at.exception[0].message}")
    return times[0], times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m dashboard.bench_sweeps", description=__doc__.splitlines()[0])
    parser.add_argument("--refreshes", type=int, default=3, help="timed script runs after the first")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        print("| runs folder | first run s | refresh s (median) |\n|---|---|---|")
        for label, make in (("60 sweeps of 12 settings", many_sweeps), ("1 sweep of 1,000 trials", thousand_trials)):
            runs_dir = Path(folder) / label.split()[0] / "runs"
            make(runs_dir)
            with multiprocessing.get_context("spawn").Pool(1) as fresh_process:
                first, later = fresh_process.apply(time_page, (runs_dir, args.refreshes))
            print(f"| {label} | {first:.2f} | {statistics.median(later):.2f} |", flush=True)


if __name__ == "__main__":
    main()
