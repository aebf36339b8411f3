"""Several processes training one run: `torchrun --nproc_per_node=N -m core.train ...` (DistributedDataParallel).

Each process (a rank) holds 1/N of the training split on its device and trains batch_size / N images a
step; DDP averages the gradients, so N ranks take the steps one process would take with the whole batch.
Rank 0 is the writer: it alone creates and writes the run folder, validates and tests, and takes the
decisions that follow from validation (best checkpoint, plateau, early stopping, pruning); the other
ranks receive them (`Team.from_writer`). A stop (Ctrl-C: torchrun forwards SIGINT to every rank) is
agreed by all ranks at the same step, so none is left waiting in a collective.

The engine is handed a team: `SOLO` (one process; every hook leaves things as they are, so a plain run
is unchanged) or a `Team` joined under torchrun. Nothing here reads a config or a run folder.
"""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from core.data.sets import ImageSet

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]  # where `-m core.train` is found (the job manager's working folder)


class WriterFailed(RuntimeError):
    """Rank 0 failed in a step the others were waiting on; its sentence is in the run's status.json."""


# ---------------------------------------------------------------------------------------------
# Where this process stands (torchrun's environment)
# ---------------------------------------------------------------------------------------------

def launched() -> bool:
    """Whether torchrun (or another launcher that sets its variables) started this process."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def batch_size_refusal(batch_size: int, processes: int) -> str | None:
    """Why `batch_size` cannot be shared by `processes` ranks, in one sentence, or None when it can."""
    if processes > 1 and batch_size % processes:
        return (f"batch_size {batch_size} does not split evenly over {processes} processes: use a multiple of "
                f"{processes} (each process trains batch_size / {processes} images a step).")
    return None


def team_refusal(device: torch.device, batch_size: int, processes: int) -> str | None:
    """Why one run cannot train as `processes` ranks on `device` of this machine, in one sentence, or None."""
    if device.type == "cuda" and processes > torch.cuda.device_count():
        return (f"this machine has {torch.cuda.device_count()} GPU(s), fewer than the {processes} processes asked "
                "for (one a GPU).")
    if device.type == "mps" and processes > 1:
        return "Apple MPS is one device, which several processes cannot share: use CUDA GPUs or the CPU."
    return batch_size_refusal(batch_size, processes)


def rank_device(device: torch.device) -> torch.device:
    """This rank's device for a run on `device`: on CUDA each rank takes its own GPU, cuda:LOCAL_RANK."""
    if device.type == "cuda":
        local, count = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
        if local >= count:
            raise ValueError(f"torchrun started {os.environ.get('LOCAL_WORLD_SIZE', local + 1)} processes on this "
                             f"machine but it has {count} GPU(s): use --nproc_per_node={count} or fewer.")
        return torch.device("cuda", local)
    if device.type == "mps":
        raise ValueError("Apple MPS is one device, which several processes cannot share: train with torchrun on "
                         "CUDA GPUs or with --device cpu.")
    return device


def torchrun_command(processes: int, args: list[str]) -> list[str]:
    """The command that trains with `processes` ranks on this machine: this Python's torchrun, a free port."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            "-m", "core.train", *args]


# ---------------------------------------------------------------------------------------------
# The teams the engine is handed
# ---------------------------------------------------------------------------------------------

class Solo:
    """One process: it is the writer and every hook is the identity, so the engine's plain path is unchanged."""

    rank, size, is_writer = 0, 1, True

    def describe(self, device_text: str) -> str:
        return device_text

    def shard(self, images: ImageSet) -> ImageSet:
        return images

    def local_batch(self, batch_size: int) -> int:
        return batch_size

    def wrap(self, session: Any) -> None:
        """Nothing to wrap: the session trains its own model."""

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def should_stop(self, stop: threading.Event) -> bool:
        return stop.is_set()

    def from_writer(self, work: Callable[[], T]) -> T:
        return work()

    def close(self) -> None:
        pass


SOLO = Solo()


class Team(Solo):
    """This process's place in a torchrun group: shards, gradient averaging, agreed stops and rank 0's decisions."""

    def __init__(self, device: torch.device, control: Any):
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        self.is_writer = self.rank == 0
        self.device, self.control = device, control  # control: a gloo group for small host-side messages
        self._pending: tuple[Any, torch.Tensor] | None = None  # the stop vote in flight

    @classmethod
    def join(cls, device: torch.device) -> Team:
        """Join torchrun's group from this rank's `device` (core.training.distributed.rank_device): nccl on CUDA, gloo
        otherwise. Returns once every rank has joined, so no rank changes the run folder before all have read it."""
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group("nccl")
            control = dist.new_group(backend="gloo")  # stop votes and decisions stay off the GPU: no host sync
        else:
            dist.init_process_group("gloo")
            control = dist.group.WORLD
        dist.barrier(group=control)
        return cls(device, control)

    def describe(self, device_text: str) -> str:
        return f"{device_text}, {self.size} processes (DDP)"

    def shard(self, images: ImageSet) -> ImageSet:
        """Every size-th picture from this rank's, the same count on every rank (the few left over are not
        trained), so every rank has as many batches an epoch and classes stay balanced whatever the order."""
        per_rank = len(images) // self.size
        return images.take(np.arange(self.rank, per_rank * self.size, self.size))

    def local_batch(self, batch_size: int) -> int:
        problem = batch_size_refusal(batch_size, self.size)
        if problem:
            raise ValueError(problem)
        return batch_size // self.size

    def wrap(self, session: Any) -> None:
        """Train through DDP, after the weights are initialised or restored: DDP starts every rank from rank 0's
        weights and buffers, then averages the gradients (BatchNorm: per-rank batch statistics, rank 0's
        running statistics broadcast at each forward, DDP's default)."""
        ids = [self.device.index] if self.device.type == "cuda" else None
        session.train_through(lambda model: nn.parallel.DistributedDataParallel(model, device_ids=ids))

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over ranks, in place (on the device: the caller's read stays the interval's one host sync)."""
        dist.all_reduce(tensor)
        return tensor

    def should_stop(self, stop: threading.Event) -> bool:
        """Whether any rank had been asked to stop by the previous step: every rank gets the same answer at
        the same step. The vote travels while the step trains (async, host side), so nothing waits on it."""
        vote = torch.tensor([1.0 if stop.is_set() else 0.0])
        work = dist.all_reduce(vote, op=dist.ReduceOp.MAX, group=self.control, async_op=True)
        previous, self._pending = self._pending, (work, vote)
        if previous is None:
            return False
        previous[0].wait()
        return bool(previous[1][0] > 0)

    def from_writer(self, work: Callable[[], T]) -> T:
        """Rank 0 runs `work` and every rank returns its (picklable) result; if it raises on rank 0, it raises
        there and WriterFailed everywhere else, so no rank waits for an answer that never comes."""
        box: list[Any] = [None]
        if not self.is_writer:
            dist.broadcast_object_list(box, src=0, group=self.control)
            if box[0] is None:
                raise WriterFailed("rank 0 failed; the run's status.json says why.")
            return box[0][0]
        try:
            result = work()
        except Exception:
            dist.broadcast_object_list(box, src=0, group=self.control)
            raise
        box[0] = (result,)
        dist.broadcast_object_list(box, src=0, group=self.control)
        return result

    def close(self) -> None:
        if self._pending is not None:
            self._pending[0].wait()
            self._pending = None
        dist.destroy_process_group()
