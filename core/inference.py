"""The one inference path: `infer` turns uint8 images into logits.

The engine's validation and test evaluation, the saved predictions behind the confusion matrix and
galleries, and the dashboard's upload-an-image prediction all go through `infer`, so they cannot
disagree. Test-time augmentation (the mirror and 1-pixel shifts) is an option of `infer` itself.
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

Normalizer = Callable[[Tensor], Tensor]  # (B, 3, H, W) uint8 -> float, normalised


def autocast(device: torch.device, dtype: torch.dtype | None):
    """bf16 autocast where asked for, a no-op otherwise."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _tta_views(x: Tensor) -> list[Tensor]:
    """The image, its mirror, and both shifted one pixel up-left and down-right (reflect padding)."""
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")  # (B, C, H+2, W+2)
    h, w = x.shape[-2:]
    shifted = [padded[..., :h, :w], padded[..., 2:, 2:]]
    views = [x, *shifted]
    return views + [v.flip(-1) for v in views]


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
        views = _tta_views(x) if tta else [x]
        with autocast(images.device, amp_dtype):
            logits = torch.stack([model(v).float() for v in views]).mean(0)  # (B, C)
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
    """A trained run's model ready to classify new images (the dashboard's upload path)."""

    def __init__(self, checkpoint: dict, device: torch.device):
        from core.models import get_model

        self.classes: list[str] = list(checkpoint["classes"])
        self.device = device
        self.model = get_model(checkpoint["model"], len(self.classes)).to(device)
        self.model.load_state_dict(checkpoint["model_state"])
        self.model.eval()
        norm = checkpoint["normalization"]
        self.normalize = make_normalizer(norm["mean"], norm["std"], norm["grayscale"])
        self.tta = bool(checkpoint["config"].get("tta", False))

    @classmethod
    def from_run(cls, run_dir: Path, device: torch.device, which: str = "last") -> Predictor:
        from core.runs import checkpoint_path, load_checkpoint

        return cls(load_checkpoint(checkpoint_path(run_dir, which), map_location=device), device)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N, C) for uint8 images (N, 32, 32, 3)."""
        x = images_to_tensor(images, self.device)
        return infer(self.model, x, self.normalize, tta=self.tta).softmax(1).cpu().numpy()


def make_normalizer(mean, std, grayscale: bool) -> Normalizer:
    """uint8 (B, 3, H, W) -> float with the training normalisation (core.data holds the maths)."""
    from core.data import normalize_images

    return functools.partial(normalize_images, mean=tuple(mean), std=tuple(std), grayscale=grayscale)
