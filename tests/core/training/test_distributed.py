"""torchrun on the CPU (core.training.distributed): 2 gloo processes train one run, stopped by Ctrl-C and resumed
under torchrun, into a folder that is a plain run's in every file and key; a batch that does not split over
the processes is refused in one sentence before anything is made. The accuracy check against a plain run
is a bench (`python -m core.bench.ddp_check`), not a test."""
from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from core import train as train_cli
from core.bench.ddp_check import verdict
from core.data.sets import image_set
from core.jobs import JobManager
from core.rundir import catalog, checkpoints, records
from core.training import distributed
from core.training.engine import start_run
from tests import REPO
from tests.helpers import TINY, tiny_config, wait_for

TIMEOUT_S = 180  # generous: the CPU may be shared; every wait ends as soon as its condition holds


def flags(**overrides) -> list[str]:
    """TINY (and overrides) as command-line flags."""
    out = []
    for field, value in {**TINY, **overrides}.items():
        flag = "--" + field.replace("_", "-")
        out += [flag if value else "--no-" + flag[2:]] if isinstance(value, bool) else [flag, str(value)]
    return out


def torchrun(*args: str) -> subprocess.Popen:
    """`torchrun --nproc_per_node=2 -m core.train ARGS` with this venv's torch, quietly, from the repository."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(distributed.torchrun_command(2, [*args, "--quiet"]), cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=TIMEOUT_S)
    return proc.returncode, out, err


def only_run(runs_dir: Path) -> Path:
    (run_dir,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    return run_dir


def shape(run_dir: Path) -> dict:
    """What a reader relies on: every file's path, and the keys of config, meta, status, test summary and
    each kind of metrics record."""
    load = lambda name: json.loads((run_dir / name).read_text())  # noqa: E731
    metrics = catalog.read_metrics(run_dir)
    return {"files": sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()),
            **{name: sorted(load(name)) for name in ("config.json", "meta.json", "status.json", "test_summary.json")},
            **{kind: sorted({k for r in metrics if r["kind"] == kind for k in r}) for kind in ("train", "val", "test")}}


@pytest.mark.usefixtures("torch_single_thread")
def test_a_team_run_stopped_by_ctrl_c_resumes_under_torchrun_into_a_folder_shaped_like_a_plain_runs(
        tmp_path, monkeypatch):
    team_runs = tmp_path / "team"
    proc = torchrun(*flags(epochs=3, batch_size=50), "--runs-dir", str(team_runs))  # 36 steps an epoch
    last = wait_for(lambda: next(team_runs.glob("*/checkpoints/last.pt"), None), timeout=TIMEOUT_S)
    proc.send_signal(signal.SIGINT)  # as Ctrl-C: torchrun forwards it to both ranks
    _, out, err = finish(proc)
    assert out.count("stopped after") == 1  # rank 0 alone speaks
    assert "forcefully exiting" not in err, "a rank did not end by itself: torchrun had to kill it"
    run_dir = only_run(team_runs)
    stopped = catalog.summarize_run(run_dir)
    assert stopped.state == "stopped" and stopped.epoch >= 1, stopped.error
    assert checkpoints.load_checkpoint(last)["progress"]["epoch"] < 3, "it stopped before the end"
    # `torchrun ... -m core.train --resume RUN_ID`: every rank reads the same plan before the ranks join.
    args = train_cli.build_parser().parse_args(["--resume", run_dir.name, "--runs-dir", str(team_runs)])
    with monkeypatch.context() as env:
        env.setenv("WORLD_SIZE", "2")
        assert train_cli.team_plan(args) == (run_dir, tiny_config(epochs=3, batch_size=50), True)

    # The dashboard's Resume: the job manager sees 2 processes in status.json and hands the run to torchrun.
    manager = JobManager(team_runs)
    manager.resume(run_dir.name)
    assert manager.wait(TIMEOUT_S)
    done = catalog.summarize_run(run_dir)
    assert (done.state, done.epoch) == ("completed", 3), done.error
    assert done.test_acc == pytest.approx(records.read_test_summary(run_dir)["accuracy"])
    assert done.status["processes"] == 2 and done.device == "cpu, 2 processes (DDP)"
    metrics = catalog.read_metrics(run_dir)
    assert [r["epoch"] for r in metrics if r["kind"] == "val"] == [1, 2, 3]
    steps = [r["step"] for r in metrics if r["kind"] == "train"]
    # 1,800 pictures in global batches of 50 (25 a rank): one process's 36 steps an epoch, each trained once
    assert steps == list(range(2, 109, 2))

    plain = start_run(tiny_config(epochs=3, batch_size=50), tmp_path / "plain", device=torch.device("cpu"))
    assert plain.state == "completed"
    assert shape(run_dir) == shape(plain.run_dir)


@pytest.mark.parametrize("rank", [0, 1])
def test_a_batch_that_does_not_split_over_the_processes_is_refused_in_one_sentence(tmp_path, monkeypatch,
                                                                                   capsys, rank):
    # torchrun's variables, as rank `rank` of 2 sees them: the check comes before the ranks join.
    for name, value in {"WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "RANK": str(rank)}.items():
        monkeypatch.setenv(name, value)
    assert train_cli.main([*flags(batch_size=99), "--runs-dir", str(tmp_path / "runs")]) == 1
    said = capsys.readouterr()
    assert said.err == (f"error: {distributed.batch_size_refusal(99, 2)}\n" if rank == 0 else "")  # once in all
    assert "does not split evenly over 2 processes" in distributed.batch_size_refusal(99, 2)
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------------------
# The pieces, without processes
# ---------------------------------------------------------------------------------------------

def test_shards_are_equal_strided_and_disjoint():
    images = image_set(np.zeros((11, 2, 2, 3), np.uint8), np.arange(11) % 3)
    shards = [FakeTeam(rank, 3).shard(images) for rank in range(3)]
    assert [list(s.index) for s in shards] == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]


def test_the_solo_team_leaves_everything_as_it_is():
    sums = torch.tensor([1.0, 2.0])
    solo = distributed.SOLO
    assert solo.sum(sums) is sums and solo.local_batch(99) == 99 and solo.from_writer(lambda: 7) == 7
    assert distributed.batch_size_refusal(99, 1) is None


class FakeTeam(distributed.Team):
    """A Team's arithmetic without a process group."""

    def __init__(self, rank: int, size: int):
        self.rank, self.size, self.is_writer = rank, size, rank == 0


def test_the_ddp_bench_calls_a_gap_within_two_standard_errors_noise():
    assert verdict([0.80, 0.82, 0.81], [0.81, 0.80, 0.82]).endswith(": within noise")
    assert verdict([0.80, 0.801, 0.80], [0.90, 0.901, 0.90]).endswith("NOT within noise")
