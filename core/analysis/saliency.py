"""Where the model looked: Grad-CAM maps (captum) and their colouring over the picture.

Usage (the dashboard's "Show where it looked" toggle and the tests):

    maps = predictor_grad_cam(predictor, images, classes)   # (N, 32, 32) float32 in [0, 1]
    shown = overlay(images[0], maps[0])                      # (128, 128, 3) uint8, the map blended on

Grad-CAM weighs the registered layer's feature maps (core.training.models, `cam_layer=`) by how much the chosen
class's score grows with each of them, keeps the positive part and enlarges the result to the picture's
size (captum's LayerGradCam and LayerAttribution.interpolate). Each map is scaled so its hottest point
is 1: it says where the model looked on *this* picture, not how sure it was. The input goes through
core.training.inference.to_model_input, the step every prediction takes, so a map explains the same numbers the
predictions came from; test-time augmentation and reduced precision are left out (one view, float32),
as gradients of an average of mirrored views, or in bf16, would blur the map.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from core.data import Normalizer
from core.training.inference import Predictor, images_to_tensor, to_model_input
from core.training.models import cam_layer_of

__all__ = ["grad_cam", "jet", "overlay", "predictor_grad_cam"]

BATCH_SIZE = 64        # pictures per backward pass: a page of tiles (24) and its two classes fit in one or two
OVERLAY_ALPHA = 0.5    # share of the colour map in the blended picture


# ================================================================== maps

def _check_inputs(images: np.ndarray, classes: np.ndarray, num_classes: int | None = None) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"Grad-CAM needs uint8 pictures shaped (N, H, W, 3); got {images.shape} {images.dtype}.")
    if classes.shape != (len(images),):
        raise ValueError(f"Grad-CAM needs one class per picture: {len(images)} pictures, {classes.shape} classes.")
    if num_classes is not None and len(classes) and (classes.min() < 0 or classes.max() >= num_classes):
        raise ValueError(f"Grad-CAM classes must be between 0 and {num_classes - 1}; got {classes.tolist()}.")


def _scale_each(maps: torch.Tensor) -> torch.Tensor:
    """(N, H, W) non-negative maps scaled so each one's maximum is 1; an all-zero map stays zero."""
    peak = maps.flatten(1).amax(1).clamp_min(1e-12)   # (N,)
    return maps / peak[:, None, None]


def grad_cam(model: nn.Module, model_name: str, normalize: Normalizer, images: np.ndarray, classes,
             device: torch.device, *, memory_format: torch.memory_format = torch.contiguous_format,
             batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Grad-CAM maps (N, H, W) float32 in [0, 1] of uint8 pictures (N, H, W, 3) for one class each.

    `model` is a built registered model `model_name` on `device`; its mode is restored afterwards and
    no gradient is left on its parameters.
    """
    images, classes = np.asarray(images), np.asarray(classes, dtype=np.int64).reshape(-1)
    _check_inputs(images, classes)
    height, width = images.shape[1:3]
    cam = LayerGradCam(model, cam_layer_of(model, model_name))
    was_training = model.training
    model.eval()
    maps = []
    try:
        for start in range(0, len(images), batch_size):
            x = to_model_input(images_to_tensor(images[start:start + batch_size], device), normalize, memory_format)
            target = torch.from_numpy(classes[start:start + batch_size]).to(device)
            # captum differentiates with torch.autograd.grad on the layer's output: parameters' .grad stay untouched.
            coarse = cam.attribute(x, target=target, relu_attributions=True)            # (B, 1, h, w)
            fine = LayerAttribution.interpolate(coarse.detach(), (height, width), "bilinear")  # (B, 1, H, W)
            maps.append(_scale_each(fine[:, 0].clamp_min(0).float()).cpu())
    finally:
        model.train(was_training)
    if not maps:
        return np.zeros((0, height, width), np.float32)
    return torch.cat(maps).numpy()


def predictor_grad_cam(predictor: Predictor, images: np.ndarray, classes) -> np.ndarray:
    """grad_cam with a run's Predictor: its model, registered layer, normalisation, device and layout.

    The maps are taken on a private copy of the model: the dashboard shares one Predictor between
    sessions, and captum's hooks on the shared model would catch another session's predictions.
    """
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    _check_inputs(np.asarray(images), classes, len(predictor.classes))
    model = copy.deepcopy(predictor.model)
    return grad_cam(model, predictor.model_name, predictor.normalize, images, classes, predictor.device,
                    memory_format=predictor.memory_format)


# ================================================================== colouring

def jet(values: np.ndarray) -> np.ndarray:
    """A jet-like colour map: values in [0, 1] (any shape) -> RGB uint8 (..., 3), blue (cold) to red (hot)."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)[..., None]   # (..., 1)
    centres = np.array([0.75, 0.5, 0.25], np.float32)                          # where R, G, B peak
    rgb = np.clip(1.5 - np.abs(4.0 * (v - centres)), 0.0, 1.0)                # (..., 3)
    return (rgb * 255 + 0.5).astype(np.uint8)


def overlay(image: np.ndarray, heat: np.ndarray, scale: int = 4, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """The map `heat` (H, W) in [0, 1] coloured with `jet` and blended on the picture (H, W, 3) uint8,
    both enlarged `scale` times by pixel repetition: (H*scale, W*scale, 3) uint8."""
    if image.shape[:2] != heat.shape:
        raise ValueError(f"A map {heat.shape} does not fit a picture {image.shape[:2]}; they must be the same size.")
    blended = (1 - alpha) * image.astype(np.float32) + alpha * jet(heat).astype(np.float32)   # (H, W, 3)
    big = np.repeat(np.repeat(blended, scale, axis=0), scale, axis=1)
    return np.clip(big + 0.5, 0, 255).astype(np.uint8)
