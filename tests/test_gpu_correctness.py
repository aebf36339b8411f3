"""GPU correctness without a GPU: each test reproduces on the CPU a bug that only showed on CUDA.

Where a GPU is needed to show the bug, the "meta" device stands in for it: a tensor there has a
device other than the CPU, as a CUDA tensor has, and no data.
"""
import threading

import numpy as np
import pytest
import torch

from core import runs
from core.engine import resume_run, start_run
from core.inference import Predictor
from tests.helpers import tiny_config


# ---------------------------------------------------------------------------------------------
# 1. Checkpoints load onto the CPU
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def loads_like_a_gpu_run(monkeypatch):
    """torch.load as a GPU run would see it: a map_location naming the run's device puts every tensor
    there (meta standing in for cuda). A loader that asks for the run's device instead of the CPU then
    fails on the first tensor it uses: on CUDA that was set_rng_state ("RNG state must be a
    torch.ByteTensor"), here it is the weights, which meta holds no data for."""
    real_load = torch.load

    def load(path, map_location=None, weights_only=True):
        if isinstance(map_location, torch.device):  # the run's device; the CPU loader asks for "cpu"
            map_location = "meta"
        return real_load(path, map_location=map_location, weights_only=weights_only)

    monkeypatch.setattr(runs.torch, "load", load)


def _stopped_after_one_epoch(runs_dir):
    stop = threading.Event()
    result = start_run(tiny_config(epochs=2), runs_dir, device=torch.device("cpu"), stop=stop,
                       on_status=lambda s: stop.set() if s.get("epoch") == 1 else None)
    assert result.state == "stopped"
    return result


def test_resume_loads_the_checkpoint_onto_the_cpu(tmp_path, loads_like_a_gpu_run):
    stopped = _stopped_after_one_epoch(tmp_path)
    resumed = resume_run(tmp_path, stopped.run_dir.name, device=torch.device("cpu"))
    assert resumed.state == "completed", resumed.error
    assert resumed.epochs_done == 2


def test_a_predictor_loads_the_checkpoint_onto_the_cpu_then_moves_the_model(tmp_path, loads_like_a_gpu_run):
    stopped = _stopped_after_one_epoch(tmp_path)
    predictor = Predictor.from_run(stopped.run_dir, torch.device("cpu"))
    probs = predictor.predict(np.zeros((2, 32, 32, 3), np.uint8))
    assert probs.shape == (2, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# 2. fastnet compiles correctly with bf16
# ---------------------------------------------------------------------------------------------

def test_compiled_bf16_fastnet_trains_to_finite_weights(tmp_path):
    """Inductor compiled fastnet's old `amax` head under bf16 autocast so that every gradient but the
    head's came out NaN: the weights went NaN after the first step. About 20-80 s here, mostly compiling."""
    result = start_run(tiny_config(model="fastnet-small", compile=True, precision="bf16", epochs=1,
                                   batch_size=200), tmp_path, device=torch.device("cpu"))
    assert result.state == "completed", result.error
    losses = [r["loss"] for r in runs.read_metrics(result.run_dir) if r["kind"] == "train"]
    assert losses and all(np.isfinite(losses))
    weights = runs.load_checkpoint(runs.checkpoint_path(result.run_dir, "last"))["train_model_state"]
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())
