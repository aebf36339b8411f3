"""The checkpoint format: what a run keeps in checkpoints/{last,best}.pt, and the checks before one is used.

A checkpoint is a dict saved with torch.save and read back with weights_only=True (one holding code is
refused, never executed), always onto the CPU. Format 2 (format 1, before the progress was stored
once, reads the same):

    format, model, classes, config, normalization {mean, std, grayscale}, metrics (of the epoch),
    model_state (the weights predictions use: the weight average when there is one), train_model_state,
    optimizer_state, progress {epoch, batch, step, ...}, plateau, early, ema, rng_cpu[, rng_cuda]

Where the files lie is core.rundir.layout's (`checkpoint_path` asks it). `Checkpoint.read` checks what
inference needs (a model name, its classes, its normalisation; whether this version knows that model is
core.training.inference's question, as the run folder imports nothing from training) and `load_weights`
checks the weights against the model, each failure one sentence.
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from core.rundir import layout
from core.rundir.config import PRECISIONS
from core.rundir.files import NotARegularFile, check_regular, write_atomically
from core.rundir.layout import CheckpointName
from core.rundir.records import RunError

FORMAT = 2
READABLE_FORMATS = (1, 2)


def checkpoint_path(run_dir: Path, name: CheckpointName) -> Path:
    """checkpoints/last.pt or checkpoints/best.pt of the run; any other name is a RunError."""
    if name not in layout.CHECKPOINT_NAMES:
        raise RunError(f"Checkpoint must be 'last' or 'best', got {name!r}.")
    return layout.checkpoint(run_dir, name)


def save_checkpoint(run_dir: Path, name: CheckpointName, payload: dict[str, Any]) -> None:
    """Self-describing (format, model name, config, progress, metrics, weights) and atomic."""
    path = checkpoint_path(run_dir, name)
    path.parent.mkdir(exist_ok=True)

    def write(tmp: Path) -> None:
        # Through a Python file, not a path: a failed write then keeps its errno (torch's own writer turns
        # a full disk into "unexpected pos"), and the file is closed at once, so removing it frees its space.
        with open(tmp, "wb") as fh:
            torch.save({"format": FORMAT, **payload}, fh)

    write_atomically(path, write)


def copy_checkpoint(run_dir: Path, source: CheckpointName, target: CheckpointName) -> None:
    """`target` becomes a copy of `source` (best.pt after last.pt, without serialising twice), atomically."""
    path = checkpoint_path(run_dir, target)
    write_atomically(path, lambda tmp: shutil.copyfile(checkpoint_path(run_dir, source), tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load onto the CPU with weights_only=True: a checkpoint holding code is refused, never executed.

    Always the CPU, whatever device the run uses: RNG states must stay CPU byte tensors, and
    load_state_dict moves weights and optimiser state to wherever their module already lives.
    """
    try:
        check_regular(path)  # a FIFO named last.pt would block torch.load forever
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"There is no checkpoint at {path}.") from None
    except NotARegularFile as exc:
        raise RunError(f"Checkpoint {path.name} of {path.parent.parent.name} cannot be loaded: {exc.strerror}.") \
            from None
    except Exception as exc:  # truncated zip, foreign pickle, ...: all mean "cannot use this file"
        raise RunError(f"Checkpoint {path.name} of {path.parent.parent.name} cannot be loaded safely "
                       f"({type(exc).__name__}); it is damaged or not one of ours.") from None
    name = f"Checkpoint {path.name} of {path.parent.parent.name}"
    if not isinstance(payload, dict) or "model_state" not in payload:
        raise RunError(f"{name} is not a training checkpoint.")
    if payload.get("format") not in READABLE_FORMATS:
        raise RunError(f"{name} has format {payload.get('format')!r}, which this version cannot read "
                       f"(it reads formats {', '.join(map(str, READABLE_FORMATS))}).")
    return payload


@dataclass(frozen=True)
class Checkpoint:
    """What inference needs from a checkpoint, checked: the model's name, classes and normalisation."""
    model: str
    classes: list[str]
    mean: list[float]
    std: list[float]
    grayscale: bool
    tta: bool
    precision: str  # the config's precision: predictions run the way the test evaluation ran
    weights: object  # checked against the model by load_weights
    source: str  # "Checkpoint last.pt of <run>": how sentences name it

    @classmethod
    def read(cls, run_dir: Path, name: CheckpointName) -> Checkpoint:
        path = checkpoint_path(run_dir, name)
        return cls.from_payload(load_checkpoint(path), source=f"Checkpoint {path.name} of {run_dir.name}")

    @classmethod
    def from_payload(cls, payload: dict, source: str) -> Checkpoint:
        mean, std, grayscale = _checked_normalization(payload, source)
        config = payload.get("config") if isinstance(payload.get("config"), dict) else {}
        precision = config.get("precision")
        return cls(model=_checked_model_name(payload, source), classes=_checked_classes(payload, source),
                   mean=mean, std=std, grayscale=grayscale, tta=config.get("tta") is True,
                   precision=precision if precision in PRECISIONS else "fp32",
                   weights=payload.get("model_state"), source=source)


def _checked_model_name(checkpoint: dict, source: str) -> str:
    """The model's name as the checkpoint spells it: some text (inference asks the registry whether it knows it)."""
    name = checkpoint.get("model")
    if not isinstance(name, str) or not name:
        raise RunError(f"{source} names the model {name!r}, which is not a model name (it should be text).")
    return name


def _checked_classes(checkpoint: dict, source: str) -> list[str]:
    classes = checkpoint.get("classes")
    if not isinstance(classes, (list, tuple)) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise RunError(f"{source} has no usable class names: it needs a list of at least 2 names, each a text.")
    return list(classes)


def _checked_normalization(checkpoint: dict, source: str) -> tuple[list[float], list[float], bool]:
    """The mean and std the model was trained with (3 finite numbers each, std above 0) and grayscale."""
    norm = checkpoint.get("normalization")
    if not isinstance(norm, dict) or "mean" not in norm or "std" not in norm:
        raise RunError(f"{source} lacks the image normalisation (mean and std) its model was trained with.")
    mean, std, grayscale = norm["mean"], norm["std"], norm.get("grayscale", False)

    def three_numbers(values) -> bool:
        return (isinstance(values, (list, tuple)) and len(values) == 3
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values))

    if not three_numbers(mean) or not three_numbers(std) or min(std) <= 0 or not isinstance(grayscale, bool):
        raise RunError(f"{source} has an unusable normalisation: mean and std must be 3 finite numbers each, "
                       f"std above 0, but they are {mean!r} and {std!r}.")
    return list(mean), list(std), grayscale


def load_weights(model: nn.Module, checkpoint: Checkpoint) -> None:
    """Load the checkpoint's weights into `model`, or say in one sentence why they do not belong to it."""
    weights, name, num_classes, source = (checkpoint.weights, checkpoint.model, len(checkpoint.classes),
                                          checkpoint.source)
    if not isinstance(weights, dict) or not all(isinstance(v, Tensor) for v in weights.values()):
        raise RunError(f"{source} holds no usable weights.")
    expected = model.state_dict()
    missing, unexpected = expected.keys() - weights.keys(), weights.keys() - expected.keys()
    reshaped = [k for k in expected.keys() & weights.keys() if weights[k].shape != expected[k].shape]
    # Only the class layer differs: the names and the weights disagree on how many classes there are.
    head_only = not missing and not unexpected and reshaped and all(
        expected[k].ndim >= 1 and expected[k].shape[0] == num_classes and weights[k].ndim == expected[k].ndim
        and weights[k].shape[1:] == expected[k].shape[1:]
        for k in reshaped)
    if head_only:
        raise RunError(f"{source} names {num_classes} classes but its weights tell {weights[reshaped[0]].shape[0]} "
                       "classes apart, so the two do not belong together.")
    if missing or unexpected or reshaped:
        raise RunError(f"{source} says its model is {name!r}, but its weights are not that model's "
                       f"({len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} of another shape).")
    if not all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point()):
        raise RunError(f"{source} holds weights that are not numbers (NaN or infinite), as a training run that "
                       "diverged writes, so it cannot classify pictures.")
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError) as exc:  # anything the shape checks above did not foresee
        raise RunError(f"{source} has weights that do not load into the model {name!r} ({type(exc).__name__}).") \
            from None

