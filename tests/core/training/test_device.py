"""core.training.device on a machine without a GPU: CUDA answers are checked with torch.cuda's probes replaced."""
from __future__ import annotations

import pytest
import torch

from core.jobs import device_key
from core.training.device import amp_dtype, resolve_device, use_fastest_kernels


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def test_cuda_and_cuda_0_are_one_device_with_one_job_queue(two_gpus):
    assert resolve_device("cuda") == resolve_device("cuda:0") == torch.device("cuda", 0)
    assert device_key("cuda") == device_key("cuda:0") != device_key("cuda:1")


def test_a_gpu_number_beyond_the_machine_is_refused_in_one_sentence(two_gpus):
    with pytest.raises(ValueError, match=r"'cuda:2' does not exist: this machine has 2 GPU\(s\), cuda:0 to cuda:1"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("capability, expected", [((7, 5), None), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_auto_precision_uses_bf16_only_on_gpus_that_have_it_in_hardware(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert amp_dtype("auto", torch.device("cuda", 0)) == expected
    assert amp_dtype("bf16", torch.device("cuda", 0)) == torch.bfloat16  # asked for by name: given
    assert amp_dtype("fp32", torch.device("cuda", 0)) is None


def test_cudnn_picks_its_fastest_kernels_on_a_cuda_run_only(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    use_fastest_kernels(torch.device("cpu"))
    assert torch.backends.cudnn.benchmark is False
    use_fastest_kernels(torch.device("cuda", 0))
    assert torch.backends.cudnn.benchmark is True
