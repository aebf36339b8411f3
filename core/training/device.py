"""Which device a run uses, and what that device can do: one answer for train, inference, jobs, bench and pages.

A device name is checked twice: its spelling when a config is validated (core.rundir.config: any machine may
read a config written for another), and against this machine by `resolve_device`, before any run folder
is made.
"""
from __future__ import annotations

import torch

from core.rundir.config import DEVICE_NAME_RULE, is_device_name


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit name must exist on this machine.

    CUDA devices always come back with their number, so "cuda" and "cuda:0" are the same device
    (one job queue per GPU, not per spelling).
    """
    if not is_device_name(name):
        raise ValueError(f"device must be {DEVICE_NAME_RULE}, got {name!r}.")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name.startswith("cuda"):
        return _cuda_device(name)
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was asked for but Apple MPS is not available; use auto or cpu.")
    return torch.device(name)


def worker_devices() -> list[str]:
    """One device per worker of a sweep on this machine: each GPU, else the Apple GPU, else the CPU."""
    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        return ["mps"]
    return ["cpu"]


def _cuda_device(name: str) -> torch.device:
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but no CUDA GPU is available; use auto or cpu.")
    count = torch.cuda.device_count()
    index = int(name.partition(":")[2] or torch.cuda.current_device())
    if index >= count:
        raise ValueError(f"device {name!r} does not exist: this machine has {count} GPU(s), "
                         f"cuda:0 to cuda:{count - 1}.")
    return torch.device("cuda", index)


def gpu_count() -> int:
    """CUDA GPUs on this machine (0 without CUDA); from 2 on, one run can train on all of them (torchrun)."""
    return torch.cuda.device_count()


def use_fastest_kernels(device: torch.device) -> None:
    """Once per run: let cuDNN pick its fastest kernels for the (fixed) input shapes."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last where convolutions run faster in it (cuDNN, oneDNN); MPS keeps the default layout."""
    return torch.channels_last if device.type in ("cuda", "cpu") else torch.contiguous_format


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so that a timing includes it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def has_native_bf16(device: torch.device) -> bool:
    """bf16 in hardware: CUDA compute capability 8.0+ (A100, H100, RTX 30xx on), or a CPU with AVX-512 BF16.

    Older GPUs (T4, V100) only emulate bf16, which is slower than float32 there.
    """
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        try:
            return bool(torch.backends.mkldnn.is_available() and torch.cpu._is_avx512_bf16_supported())
        except AttributeError:  # a torch without the probe: stay in float32
            return False
    return False


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast type for a precision setting; None means float32. 'auto' uses bf16 only where it is native."""
    if precision == "fp32" or device.type == "mps":
        return None
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if has_native_bf16(device) else None
