"""core.jobs: background runs that complete, stop and resume, and wait their turn; map jobs and sweep workers
answer the same Job interface (alive? stop)."""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import torch

from core.analysis import features
from core.jobs import JobBook, JobManager, MapState, SweepWorker, torchrun, training
from core.rundir import catalog, checkpoints, records
from core.training import distributed
from tests.helpers import tiny_config, train_tiny_run, wait_for

TIMEOUT_S = 120  # generous: the CPU may be shared; every wait ends as soon as its condition holds


def state(manager: JobManager, run_id: str) -> str:
    return catalog.summarize_run(catalog.run_path(manager.runs_dir, run_id)).state


def train_steps(manager: JobManager, run_id: str) -> list[dict]:
    return [r for r in catalog.read_metrics(catalog.run_path(manager.runs_dir, run_id)) if r["kind"] == "train"]


@pytest.fixture
def manager(tmp_path):
    jobs = JobManager(tmp_path / "runs")
    yield jobs
    for run_id in jobs.active_ids():  # a failing test must not leave a thread training
        jobs.stop(run_id)
    jobs.wait(TIMEOUT_S)


def test_stop_mid_epoch_keeps_a_checkpoint_and_resume_finishes(manager):
    cfg = tiny_config(epochs=2, batch_size=50, log_every=2)  # 36 steps an epoch: room to stop inside one
    run_id = manager.submit(cfg)
    path = catalog.run_path(manager.runs_dir, run_id)
    wait_for(lambda: any(r["epoch"] > 0.1 for r in train_steps(manager, run_id)))  # a few steps into epoch 1
    manager.stop(run_id)
    assert manager.wait(TIMEOUT_S)

    stopped = catalog.summarize_run(path)
    assert stopped.state == "stopped" and stopped.epoch == 0 and stopped.test_acc is None
    checkpoint = checkpoints.load_checkpoint(checkpoints.checkpoint_path(path, "last"))["progress"]
    assert checkpoint["epoch"] == 0 and 0 < checkpoint["batch"] < 36, "the stop was saved mid-epoch"

    manager.resume(run_id)
    assert manager.wait(TIMEOUT_S)
    done = catalog.summarize_run(path)
    metrics, test_summary = catalog.read_metrics(path), records.read_test_summary(path)
    assert (done.state, done.epoch, done.epochs) == ("completed", 2, 2)
    assert [r["epoch"] for r in metrics if r["kind"] == "val"] == [1, 2]
    assert [r["kind"] for r in metrics].count("test") == 1
    assert test_summary is not None and done.test_acc == pytest.approx(test_summary["accuracy"])
    steps = [r["step"] for r in metrics if r["kind"] == "train"]
    assert steps == sorted(set(steps)), "the steps after the checkpoint were trained once, not twice"


def test_a_second_start_waits_its_turn_then_trains_to_completion(manager):
    first = manager.submit(tiny_config(epochs=2, batch_size=50), name="first")
    second = manager.submit(tiny_config(epochs=1), name="second")
    assert manager.position(second) in (1, 2)  # 2 until the worker has picked up the first job
    wait_for(lambda: state(manager, first) == "running")
    assert (manager.position(first), manager.position(second)) == (0, 1)
    assert state(manager, second) == "queued" and manager.active_ids() == [first, second]
    wait_for(lambda: train_steps(manager, first))  # the first is really training ...
    assert state(manager, second) == "queued"  # ... and the second still waits
    manager.stop(first)

    running_at_once = 0
    while manager.active_ids():  # until both are done: never two training together
        running_at_once = max(running_at_once, sum(state(manager, r) == "running" for r in (first, second)))
        time.sleep(0.02)
    assert running_at_once == 1
    a = catalog.summarize_run(catalog.run_path(manager.runs_dir, first)).status
    b = catalog.summarize_run(catalog.run_path(manager.runs_dir, second)).status
    assert (a["state"], b["state"]) == ("stopped", "completed")
    assert b["started_at"] >= a["finished_at"]
    done = catalog.summarize_run(catalog.run_path(manager.runs_dir, second))
    assert (done.name, done.epoch, done.epochs) == ("second", 1, 1) and done.test_acc is not None


def test_stopping_a_waiting_job_takes_it_out_of_the_queue(manager):
    first = manager.submit(tiny_config(epochs=2))
    second = manager.submit(tiny_config(epochs=1))
    wait_for(lambda: manager.position(first) == 0)  # the worker has picked up the first; the second waits
    manager.stop(second)
    assert manager.position(second) is None and second not in manager.active_ids()
    assert not catalog.run_path(manager.runs_dir, second).exists(), "a run that never started leaves nothing behind"
    manager.stop(first)
    assert manager.wait(TIMEOUT_S)
    assert [s.run_id for s in catalog.list_runs(manager.runs_dir)] == [first]
    with pytest.raises(catalog.RunError):
        manager.stop(second)


# ---------------------------------------------------------------------------------------------
# Jobs of several processes (all GPUs): one torchrun subprocess trains the queued run
# ---------------------------------------------------------------------------------------------

class FakeTorchrun:
    """Stands in for subprocess.Popen: records the command and ends at once, having trained nothing."""
    launched: list = []

    def __init__(self, command, **kwargs):
        self.launched.append((command, kwargs.get("cwd")))
        self.returncode = 1

    def wait(self, timeout=None):
        return self.returncode

    def send_signal(self, sig):
        pass


def test_an_all_gpus_job_hands_its_queued_run_to_torchrun(manager, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # a 2-GPU machine, as far as the manager can tell
    monkeypatch.setattr(training, "resolve_device", lambda name: torch.device("cuda", 0))
    monkeypatch.setattr(torchrun.subprocess, "Popen", FakeTorchrun)
    monkeypatch.setattr(FakeTorchrun, "launched", [])
    with pytest.raises(ValueError, match="does not split evenly over 2 processes"):
        manager.submit(tiny_config(device="cuda", batch_size=99), processes=2)
    with pytest.raises(ValueError, match="has 2 GPU"):
        manager.submit(tiny_config(device="cuda"), processes=3)
    assert not manager.runs_dir.exists() or not list(manager.runs_dir.iterdir()), "a refusal makes no folder"

    run_id = manager.submit(tiny_config(device="cuda"), processes=2)
    assert manager.wait(TIMEOUT_S)
    assert FakeTorchrun.launched == [(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "core.train",
         "--queued", run_id, "--runs-dir", str(manager.runs_dir.resolve()), "--quiet"], distributed.REPO)]
    ended = catalog.summarize_run(catalog.run_path(manager.runs_dir, run_id))  # torchrun ended without taking it over
    assert ended.state == "failed" and ended.error == "torchrun ended (exit status 1) before training: no message"



# ---------------------------------------------------------------------------------------------
# What every kind of job answers: alive? stop. The book of the jobs of one kind.
# ---------------------------------------------------------------------------------------------

@dataclass
class PlainJob:
    key: str
    alive: bool = True

    def stop(self) -> None:
        self.alive = False

    def is_alive(self) -> bool:
        return self.alive


def test_the_book_keeps_the_live_jobs_and_the_latest_ended_one_of_each_key():
    book: JobBook[PlainJob] = JobBook()
    first, second, other = book.add(PlainJob("a")), book.add(PlainJob("a")), book.add(PlainJob("b"))
    assert book.alive("a") == [first, second] and book.latest("a") is second and book.alive("b") == [other]
    first.stop()
    second.stop()
    assert book.alive("a") == [] and book.latest("a") is second, "an ended job still says how it ended"
    third = book.add(PlainJob("a"))
    assert book.alive("a") == [third] and book._jobs["a"] == [third], "ended jobs are forgotten"
    assert book.latest("nothing") is None and book.alive("nothing") == []


def test_stopping_a_sweep_worker_is_its_ctrl_c():
    """SweepWorker.stop sends the process SIGINT, as `python -m core.sweep work` expects (it ends its trial
    "stopped"); a process that ignored it would still be alive."""
    ready = "import signal, sys, time; print('ready', flush=True); time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", ready], stdout=subprocess.PIPE, text=True)
    worker = SweepWorker("sweep-1", process)
    try:
        assert process.stdout.readline().strip() == "ready" and worker.is_alive() and worker.key == "sweep-1"
        worker.stop()
        assert process.wait(TIMEOUT_S) != 0 and not worker.is_alive()  # KeyboardInterrupt ended it
        worker.stop()  # an ended worker: nothing to signal
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def test_a_map_job_told_to_stop_ends_stopped_keeps_nothing_and_may_be_tried_again(tmp_path):
    run = train_tiny_run(tmp_path, epochs=1).run_dir  # as made before the map existed
    manager = JobManager(tmp_path)
    job = manager.compute_map(run.name)
    job.stop()  # long before its files could be complete
    wait_for(lambda: not job.is_alive(), timeout=TIMEOUT_S)
    assert job.state == MapState.STOPPED and job.error is None and not features.has_map(run)
    again = manager.compute_map(run.name)
    with pytest.raises(catalog.RunError, match="already being computed"):
        manager.compute_map(run.name)
    assert manager.map_job(run.name) is again
    again.stop()
    wait_for(lambda: not again.is_alive(), timeout=TIMEOUT_S)


def test_a_run_training_here_gets_its_map_when_it_finishes_not_from_a_map_job(manager):
    run_id = manager.submit(tiny_config(epochs=1))
    with pytest.raises(catalog.RunError, match="still training here"):
        manager.compute_map(run_id)
    assert manager.map_job(run_id) is None


def test_a_model_no_architecture_is_registered_under_is_refused_before_any_folder(manager):
    with pytest.raises(ValueError, match="model must be one of .*, got 'resnet1000'"):
        manager.submit(tiny_config(model="resnet1000"))
    assert not manager.runs_dir.exists() or not any(manager.runs_dir.iterdir())
