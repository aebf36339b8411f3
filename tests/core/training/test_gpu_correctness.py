"""GPU correctness without a GPU: each test reproduces on the CPU a bug that only showed on CUDA.

Where a GPU is needed to show the bug, the "meta" device stands in for it: a tensor there has a
device other than the CPU, as a CUDA tensor has, and no data.
"""
import itertools
import threading
import types

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from core.data import DeviceLoader
from core.rundir import catalog, checkpoints
from core.training import session as sessions
from core.training.engine import resume_run, start_run
from core.training.inference import Predictor
from core.training.models import list_models
from tests.helpers import tiny_config

CPU = torch.device("cpu")

# Ops that make the host wait for the device: reading a value (item, bool(), float() of a tensor)
# or making an output whose size depends on the data. (Off the CPU a copy to the CPU waits too;
# on the CPU that is no op at all, so the run's one planned read, the logging interval's
# `tolist`, does not show here.)
HOST_SYNC_OPS = {"_local_scalar_dense", "item", "is_nonzero", "equal", "nonzero", "masked_select", "_unique2",
                 "unique_dim", "unique_consecutive"}


def waits_for_device(func, args) -> bool:
    name = func.overloadpacket.__name__
    if name in ("index", "index_put", "index_put_"):  # x[mask] and x[mask] = v find the mask's size first
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1] if i is not None)
    return name in HOST_SYNC_OPS


class HostSyncRecorder(TorchDispatchMode):
    """Records (step, op) for every host-sync op, except reads of tensors `host_side` says live on the host."""

    def __init__(self, host_side):
        super().__init__()
        self.host_side, self.step, self.syncs = host_side, 0, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if waits_for_device(func, args) and not self.host_side(args[0]):
            self.syncs.append((self.step, func.overloadpacket.__name__))
        return func(*args, **(kwargs or {}))


def host_syncs_by_step(monkeypatch, runs_dir, steps: int | None = None, **overrides) -> list[tuple[int, str]]:
    """Train one epoch (cut to its first `steps` batches) and return the host syncs, each with the step
    (from 1) whose body ran it.

    The loader's epoch marks the steps: recording lasts from its first batch to its end, so it covers
    making each batch and everything the loop does with it, but not validation or checkpoints.
    Adam's step counts are exempt: torch keeps them on the CPU on purpose, even for a CUDA model.
    """
    optimizers = []
    build_optimizer = sessions.build_optimizer

    def recorded_build(*args, **kwargs):
        optimizers.append(build_optimizer(*args, **kwargs))
        return optimizers[-1]

    def is_step_count(tensor) -> bool:
        return any(tensor is state.get("step") for o in optimizers for state in o.state.values())

    recorder = HostSyncRecorder(is_step_count)
    epoch = DeviceLoader.epoch

    def recorded_epoch(self, *args, **kwargs):
        with recorder:
            for batch in itertools.islice(epoch(self, *args, **kwargs), steps):
                recorder.step += 1
                yield batch

    monkeypatch.setattr(sessions, "build_optimizer", recorded_build)
    monkeypatch.setattr(DeviceLoader, "epoch", recorded_epoch)
    result = start_run(tiny_config(epochs=1, checkpoint_every=0.0, **overrides), runs_dir, device=CPU)
    assert result.state == "completed", result.error
    assert recorder.step > 1, "the recorder must have seen the steps"
    return recorder.syncs


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

    monkeypatch.setattr(checkpoints.torch, "load", load)


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



@pytest.mark.parametrize("saved_gpus, restored", [(2, True), (1, False), (None, False)])
def test_the_gpu_generators_state_is_restored_onto_as_many_gpus(monkeypatch, saved_gpus, restored):
    """No GPU needed: torch.cuda's RNG functions are stood in for, on a machine with 2 GPUs."""
    states = [torch.ByteTensor([g]) for g in range(2)]
    calls = []
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: states)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", calls.append)
    on_gpu = types.SimpleNamespace(device=torch.device("cuda", 0))
    assert sessions.Session._cuda_rng(on_gpu) == {"rng_cuda": states}
    assert sessions.Session._cuda_rng(types.SimpleNamespace(device=CPU)) == {}
    sessions.Session._restore_cuda_rng(on_gpu, None if saved_gpus is None else states[:saved_gpus])
    assert calls == ([states] if restored else [])

# ---------------------------------------------------------------------------------------------
# 2. fastnet compiles correctly with bf16
# ---------------------------------------------------------------------------------------------

def test_compiled_bf16_fastnet_trains_to_finite_weights(tmp_path):
    """Inductor compiled fastnet's old `amax` head under bf16 autocast so that every gradient but the
    head's came out NaN: the weights went NaN after the first step. About 20-80 s here, mostly compiling."""
    result = start_run(tiny_config(model="fastnet-small", compile=True, precision="bf16", epochs=1,
                                   batch_size=200), tmp_path, device=torch.device("cpu"))
    assert result.state == "completed", result.error
    losses = [r["loss"] for r in catalog.read_metrics(result.run_dir) if r["kind"] == "train"]
    assert losses and all(np.isfinite(losses))
    weights = checkpoints.load_checkpoint(checkpoints.checkpoint_path(result.run_dir, "last"))["train_model_state"]
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


# ---------------------------------------------------------------------------------------------
# 3. The weight average stays on the device
# ---------------------------------------------------------------------------------------------

def test_the_weight_average_lives_and_updates_on_the_device(tmp_path, monkeypatch):
    """torch's AveragedModel read its update counter on the host twice a step."""
    assert host_syncs_by_step(monkeypatch, tmp_path, ema=0.9, log_every=1000) == []


def test_the_weight_average_is_on_the_models_device_and_starts_from_the_first_step():
    from core.training.ema import WeightAverage

    with torch.device("meta"):
        model = torch.nn.BatchNorm2d(3)
    average = WeightAverage(model, decay=0.5)
    assert {t.device for t in [*average.module.parameters(), *average.module.buffers()]} == {model.weight.device}
    model = torch.nn.BatchNorm2d(3)
    average = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model.bias.fill_(2.0)
        average.update(model, step=0)  # the first update takes the weights as they are
        torch.testing.assert_close(average.module.bias, torch.full((3,), 2.0))
        model.bias.fill_(4.0)
        average.update(model, step=1)
        torch.testing.assert_close(average.module.bias, torch.full((3,), 3.0))


def test_a_resumed_run_carries_on_its_weight_average(tmp_path):
    """AveragedModel's counter was not in the checkpoint, so a resumed run restarted the average."""
    whole = start_run(tiny_config(epochs=2, ema=0.9), tmp_path, device=CPU)
    stop = threading.Event()
    first = start_run(tiny_config(epochs=2, ema=0.9), tmp_path, device=CPU, stop=stop,
                      on_status=lambda s: stop.set() if s.get("epoch") == 1 else None)
    resumed = resume_run(tmp_path, first.run_dir.name, device=CPU)
    a, b = (checkpoints.load_checkpoint(checkpoints.checkpoint_path(r.run_dir, "last"))["model_state"] for r in (whole, resumed))
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


# ---------------------------------------------------------------------------------------------
# 4. One normaliser, its constants made once on the device
# ---------------------------------------------------------------------------------------------

def test_evaluation_normalises_with_the_training_loaders_constants(tmp_path, monkeypatch):
    """Evaluation made its mean and std tensors from Python numbers every batch: a host-to-device copy each."""
    from core.training.inference import evaluate

    session = sessions.Session(tiny_config(), tmp_path, CPU)
    made = []
    for name in ("tensor", "as_tensor"):
        real = getattr(torch, name)
        monkeypatch.setattr(torch, name, lambda *a, _real=real, _name=name, **k: made.append(_name) or _real(*a, **k))
    images, labels = session.val_images[:200], session.val_labels[:200]
    evaluate(session.eval_model, images, labels, session.normalize, batch_size=40)  # 5 batches
    assert made == [], "no tensor made from Python numbers per batch"
    assert session.normalize is session.loader.normalize, "training and evaluation share one normaliser"


# ---------------------------------------------------------------------------------------------
# 5. No training step waits for the device
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", list_models())
def test_no_training_step_waits_for_the_device(tmp_path, monkeypatch, model):
    """Metrics leave the device once per logging interval as one copy (`tolist`), which is not among
    the recorded ops, so every step, logging ones included, must record none. Augmentation, label
    smoothing, the weight average, lookahead and the models' parameter groups are on, so their code runs
    inside the steps too."""
    syncs = host_syncs_by_step(monkeypatch, tmp_path, steps=4, model=model, batch_size=32, log_every=2,
                               val_fraction=0.0, ema=0.9, crop_padding=2, flip="alternating", cutout=8,
                               label_smoothing=0.1, lookahead_every=2, norm_bias_lr_scale=4.0,
                               whiten_bias_epochs=0.01)
    assert syncs == []
