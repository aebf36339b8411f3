"""The one inference path: `infer` turns uint8 images into logits.

The engine's validation and test evaluation, the saved predictions behind the confusion matrix and
galleries, and the dashboard's upload-an-image prediction all go through `infer`, so they cannot
disagree. Test-time augmentation (the mirror and 1-pixel shifts, weighted) is an option of `infer` itself.
`class_accuracy` scores predictions per class, for the engine's test summary and the analysis pages alike;
`Predictor` is a trained run's model, checked, from the checkpoint `evaluated_checkpoint` names.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.data import Normalizer
from core.rundir import layout
from core.rundir.checkpoints import Checkpoint, load_weights
from core.rundir.records import RunError, read_test_summary
from core.training.device import amp_dtype, memory_format
from core.training.models import classifier_layer, get_model, list_models


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


def to_model_input(images: Tensor, normalize: Normalizer,
            memory_format: torch.memory_format = torch.contiguous_format) -> Tensor:
    """uint8 (B, 3, H, W) -> the model's normalised float input: the one preprocessing step (infer and Grad-CAM)."""
    return normalize(images).contiguous(memory_format=memory_format)  # (B, 3, H, W)


@torch.no_grad()
def infer(model: nn.Module, images: Tensor, normalize: Normalizer, *, batch_size: int = 1000,
          tta: bool = False, amp_dtype: torch.dtype | None = None,
          memory_format: torch.memory_format = torch.contiguous_format) -> Tensor:
    """Logits (N, C) float32 on the images' device for uint8 images (N, 3, 32, 32) on that device."""
    was_training = model.training
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        x = to_model_input(images[start:start + batch_size], normalize, memory_format)
        views = _tta_views(x) if tta else [(x, 1.0)]
        with autocast(images.device, amp_dtype):
            logits = torch.stack([weight * model(v).float() for v, weight in views]).sum(0)  # (B, C)
        outputs.append(logits)
    model.train(was_training)
    if not outputs:
        return torch.zeros(0, 0, device=images.device)
    return torch.cat(outputs)


def infer_features(model: nn.Module, images: Tensor, normalize: Normalizer, **infer_kwargs) -> tuple[Tensor, Tensor]:
    """(logits (N, C), features (N, D)) float32: `infer` itself, with the final Linear layer's input caught.

    No test-time augmentation: a picture's features are those of the picture as it is, one vector each.
    """
    caught: list[Tensor] = []

    def catch(_module: nn.Module, args: tuple[Tensor, ...]) -> None:
        caught.append(args[0].detach().float().flatten(1))  # (B, D)

    handle = classifier_layer(model).register_forward_pre_hook(catch)
    try:
        logits = infer(model, images, normalize, **{**infer_kwargs, "tta": False})
    finally:
        handle.remove()
    features = torch.cat(caught) if caught else torch.zeros(0, 0, device=images.device)
    return logits, features


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


def checked_class_numbers(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predictions as int64, or ValueError in one sentence: two lists of one length, each a class
    number from 0 to num_classes - 1."""
    labels, pred = np.asarray(labels, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    if labels.shape != pred.shape or labels.ndim != 1:
        raise ValueError(f"labels and predictions must be two lists of the same length, got shapes "
                         f"{labels.shape} and {pred.shape}.")
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}.")
    for name, values in (("labels", labels), ("predictions", pred)):
        if len(values) and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must be class numbers from 0 to {num_classes - 1}, "
                             f"got values from {values.min()} to {values.max()}.")
    return labels, pred


def class_accuracy(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C,) share of class k's images classified correctly, NaN for a class with no images.

    The engine writes these to test_summary.json as per_class_accuracy; the Errors and Compare pages show them.
    """
    labels, pred = checked_class_numbers(labels, pred, num_classes)
    totals = np.bincount(labels, minlength=num_classes)  # (C,)
    right = np.bincount(labels[labels == pred], minlength=num_classes)  # (C,)
    return np.divide(right, totals, out=np.full(num_classes, np.nan), where=totals > 0)


def evaluated_checkpoint(run_dir: Path) -> layout.CheckpointName | None:
    """The checkpoint the saved test predictions came from: best after early stopping (the engine tests the
    best weights then), else last; None when the run has saved neither."""
    test_summary = read_test_summary(Path(run_dir)) or {}
    order: tuple[layout.CheckpointName, ...] = ("best", "last") if test_summary.get("early_stopped") else \
        ("last", "best")
    return next((name for name in order if layout.checkpoint(run_dir, name).is_file()), None)


class Predictor:
    """A trained run's model ready to classify new images (the dashboard's upload path).

    The checkpoint is checked before use: a registered model name, class names that match the
    weights' output, a usable normalisation and weights that load into that model. Anything else
    raises RunError with one sentence, never a traceback from inside torch.
    """

    def __init__(self, checkpoint: Checkpoint, device: torch.device):
        if checkpoint.model not in list_models():
            raise RunError(f"{checkpoint.source} names the model {checkpoint.model!r}, which is not one this "
                           f"version knows ({', '.join(list_models())}).")
        self.classes, self.device, self.tta = checkpoint.classes, device, checkpoint.tta
        self.model_name = checkpoint.model  # the registry entry, which names the layer Grad-CAM looks at
        # The same numbers and layout as the run's own test evaluation, so an upload and a test picture agree.
        self.amp, self.memory_format = amp_dtype(checkpoint.precision, device), memory_format(device)
        self.model = get_model(checkpoint.model, len(self.classes))
        load_weights(self.model, checkpoint)
        self.model.to(device, memory_format=self.memory_format).eval()
        self.normalize = Normalizer(checkpoint.mean, checkpoint.std, device=device, grayscale=checkpoint.grayscale)

    @classmethod
    def from_run(cls, run_dir: Path, device: torch.device, checkpoint: layout.CheckpointName = "last") -> Predictor:
        return cls(Checkpoint.read(run_dir, checkpoint), device)  # read onto the CPU; the model moves after

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N, C) for uint8 images (N, 32, 32, 3)."""
        x = images_to_tensor(images, self.device)
        logits = infer(self.model, x, self.normalize, tta=self.tta, amp_dtype=self.amp,
                       memory_format=self.memory_format)
        return logits.softmax(1).cpu().numpy()

    def features(self, images: np.ndarray) -> np.ndarray:
        """Penultimate-layer features (N, D) float32 for uint8 images (N, 32, 32, 3), through `infer`."""
        x = images_to_tensor(images, self.device)
        _, feats = infer_features(self.model, x, self.normalize, amp_dtype=self.amp, memory_format=self.memory_format)
        return feats.cpu().numpy()
