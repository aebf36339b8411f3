"""The one inference path: `infer` turns uint8 images into logits.

The engine's validation and test evaluation, the saved predictions behind the confusion matrix and
galleries, and the dashboard's upload-an-image prediction all go through `infer`, so they cannot
disagree. Test-time augmentation (the mirror and 1-pixel shifts, weighted) is an option of `infer` itself.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.data import Normalizer
from core.runs import RunError


def autocast(device: torch.device, dtype: torch.dtype | None):
    """bf16 autocast where asked for, a no-op otherwise."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


# airbench94's weighting: the image as it is and its mirror count for half of the answer, the four shifted
# views share the other half, as a shift moves the picture away from how it was framed.
UNSHIFTED_WEIGHT = 0.5


def _tta_views(x: Tensor) -> list[tuple[Tensor, float]]:
    """(view, weight) pairs, weights summing to 1: the image, both shifted one pixel up-left and down-right
    (reflect padding), and the mirror of each."""
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")  # (B, C, H+2, W+2)
    h, w = x.shape[-2:]
    shifted = [padded[..., :h, :w], padded[..., 2:, 2:]]
    views = [(x, UNSHIFTED_WEIGHT / 2), *((v, (1 - UNSHIFTED_WEIGHT) / 4) for v in shifted)]
    return views + [(v.flip(-1), weight) for v, weight in views]


@torch.no_grad()
def infer(model: nn.Module, images: Tensor, normalize: Normalizer, *, batch_size: int = 1000,
          tta: bool = False, amp_dtype: torch.dtype | None = None,
          memory_format: torch.memory_format = torch.contiguous_format) -> Tensor:
    """Logits (N, C) float32 on the images' device for uint8 images (N, 3, 32, 32) on that device."""
    was_training = model.training
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        x = normalize(images[start:start + batch_size]).contiguous(memory_format=memory_format)
        views = _tta_views(x) if tta else [(x, 1.0)]
        with autocast(images.device, amp_dtype):
            logits = torch.stack([weight * model(v).float() for v, weight in views]).sum(0)  # (B, C)
        outputs.append(logits)
    model.train(was_training)
    if not outputs:
        return torch.zeros(0, 0, device=images.device)
    return torch.cat(outputs)


@dataclass(frozen=True)
class Evaluation:
    probs: np.ndarray  # (N, C) float32
    loss: np.ndarray  # (N,) per-sample cross-entropy
    accuracy: float
    mean_loss: float


def evaluate(model: nn.Module, images: Tensor, labels: Tensor, normalize: Normalizer, **infer_kwargs) -> Evaluation:
    """Accuracy, loss and per-sample results; one transfer off the device at the end."""
    logits = infer(model, images, normalize, **infer_kwargs)
    loss = F.cross_entropy(logits, labels, reduction="none")  # (N,)
    probs = logits.softmax(1)
    correct = (probs.argmax(1) == labels).float()
    summary = torch.stack([correct.mean(), loss.mean()]).tolist()
    return Evaluation(probs.cpu().numpy(), loss.cpu().numpy(), summary[0], summary[1])


def images_to_tensor(images: np.ndarray, device: torch.device) -> Tensor:
    """(N, H, W, 3) uint8 numpy -> (N, 3, H, W) uint8 tensor on `device`."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).contiguous()


class Predictor:
    """A trained run's model ready to classify new images (the dashboard's upload path).

    The checkpoint is checked before use: a registered model name, class names that match the
    weights' output, a usable normalisation and weights that load into that model. Anything else
    raises RunError with one sentence, never a traceback from inside torch.
    """

    def __init__(self, checkpoint: dict, device: torch.device, source: str = "The checkpoint"):
        from core.models import get_model

        name = _checked_model_name(checkpoint, source)
        self.classes: list[str] = _checked_classes(checkpoint, source)
        mean, std, grayscale = _checked_normalization(checkpoint, source)
        self.device = device
        self.model = get_model(name, len(self.classes))
        _load_weights(self.model, checkpoint.get("model_state"), name, len(self.classes), source)
        self.model.to(device).eval()
        self.normalize = Normalizer(mean, std, device=device, grayscale=grayscale)
        config = checkpoint.get("config")
        self.tta = bool(config.get("tta", False)) if isinstance(config, dict) else False

    @classmethod
    def from_run(cls, run_dir: Path, device: torch.device, which: str = "last") -> Predictor:
        from core.runs import checkpoint_path, load_checkpoint

        checkpoint = load_checkpoint(checkpoint_path(run_dir, which))  # on the CPU; the model moves after
        return cls(checkpoint, device, source=f"Checkpoint {which}.pt of {run_dir.name}")

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N, C) for uint8 images (N, 32, 32, 3)."""
        x = images_to_tensor(images, self.device)
        return infer(self.model, x, self.normalize, tta=self.tta).softmax(1).cpu().numpy()


# ---------------------------------------------------------------------------------------------
# Checking a checkpoint before use: each check names what is wrong in one sentence
# ---------------------------------------------------------------------------------------------

def _checked_model_name(checkpoint: dict, source: str) -> str:
    from core.models import list_models

    name = checkpoint.get("model")
    if not isinstance(name, str) or name not in list_models():
        raise RunError(f"{source} names the model {name!r}, which is not one this version knows "
                       f"({', '.join(list_models())}).")
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


def _load_weights(model: nn.Module, weights: object, name: str, num_classes: int, source: str) -> None:
    """Load `weights` into `model`, or say in one sentence why they do not belong to it."""
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

