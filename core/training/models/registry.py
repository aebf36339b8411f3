"""The model registry: one dict of named builders, and what the trainer, the pages and Grad-CAM ask of it.

Usage (the dashboard's architecture picker, the trainer and the tests all go through these):

    list_models()                      # names in registration order; "fastnet" first (the default)
    check_model_name("resnet20")       # ValueError in one sentence for a name no builder has
    get_model("resnet20", num_classes=10)
    describe_model("resnet20")         # {"name", "description", "parameters"}

Adding an architecture is adding one builder decorated with `@register_model(name, description)` in an
architecture module of this package (the habit of torchvision's models/_api.py: the registry apart from the
architectures). A builder takes `num_classes` and returns an nn.Module mapping (B, 3, 32, 32) normalised
float images to (B, num_classes) logits. A model that needs data for its initialisation defines
`init_from_data(images)`; the trainer calls it once before the first step (see fastnet.py). A model whose
parameters want different optimiser settings registers with `param_groups=`, a function of the built model
and the run's TrainConfig returning torch-style groups (nanoGPT's configure_optimizers, torchvision's
split_normalization_params): each a dict with "params" and any per-group optimiser setting
("weight_decay": 0.0 for norm layers, say), plus "lr_scale", a multiplier on the schedule's rate,
and "train_epochs", after which the group's rate is 0 (held still). Without one, every trainable
parameter is in one group. `parameter_groups(model, cfg)` is what the optimiser gets.
Each builder also names, with `cam_layer=`, the dotted name of the module whose (B, C, H, W) output
Grad-CAM looks at ("where it looked", core/analysis/saliency.py): the last one that still has a useful map
(at least 4x4). `cam_layer_of(model, name)` finds that module in a built model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # for annotations only: the run folder's config never asks the registry anything
    from core.rundir.config import TrainConfig

__all__ = ["ModelSpec", "register_model", "list_models", "check_model_name", "get_model", "describe_model",
           "parameter_groups", "cam_layer_of", "classifier_layer"]


# ================================================================== registry

ParamGroups = Callable[[nn.Module, "TrainConfig"], list[dict]]   # (model, cfg) -> [{"params": [...], "lr_scale": 2.0}]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str                      # one plain sentence a non-programmer understands
    builder: Callable[..., nn.Module]     # builder(num_classes) -> nn.Module
    param_groups: ParamGroups | None = None   # (model, cfg) -> optimiser groups; None: one group of all
    cam_layer: str | None = None          # dotted module name Grad-CAM looks at, e.g. "blocks.8"; None: no maps


_REGISTRY: dict[str, ModelSpec] = {}      # insertion order is the order list_models() shows


def _check_new_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"A model name must be a non-empty string; got {name!r}.")
    if name in _REGISTRY:
        raise ValueError(f"A model named '{name}' is already registered; pick another name.")


def register_model(name: str, description: str, *, param_groups: ParamGroups | None = None,
                   cam_layer: str | None = None) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding `builder(num_classes) -> nn.Module` (its optimiser groups, its Grad-CAM layer) under `name`."""
    _check_new_name(name)
    if not isinstance(description, str) or not description.strip():
        raise ValueError(f"Model '{name}' needs a non-empty plain-words description.")

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _check_new_name(name)   # again: two decorators with one name may be created before use
        _REGISTRY[name] = ModelSpec(name=name, description=description.strip(), builder=builder,
                                    param_groups=param_groups, cam_layer=cam_layer)
        return builder

    return decorator


def list_models() -> list[str]:
    """Registered model names in registration order (the first one is the default)."""
    return list(_REGISTRY)


def check_model_name(name: str) -> None:
    """Refuse a model name no architecture is registered under, in the words of a bad setting (ValueError).

    Called wherever a user's settings enter training before a run folder is made (the command line,
    core.training.engine.start_run and checked_run), as TrainConfig no longer knows the registry."""
    if name not in _REGISTRY:
        raise ValueError(f"model must be one of {', '.join(_REGISTRY)}, got {name!r}.")


def _spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise ValueError(f"Unknown model '{name}'; choose one of: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def get_model(name: str, num_classes: int = 10) -> nn.Module:
    """Build a fresh, randomly initialised model (on the current default device, usually cpu)."""
    spec = _spec(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be a whole number of at least 2; got {num_classes!r}.")
    return spec.builder(num_classes)


def parameter_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """The optimiser's parameter groups for `model`, built as `cfg.model`: its declared ones, or one of everything.

    Frozen parameters are left out of every group, as the optimiser never updates them.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    declare = _spec(cfg.model).param_groups
    if declare is None:
        return [{"params": trainable}]
    groups = [{**group, "params": [p for p in group["params"] if p.requires_grad]} for group in declare(model, cfg)]
    groups = [group for group in groups if group["params"]]
    _check_groups(cfg.model, groups, trainable)
    return groups


def _check_groups(name: str, groups: list[dict], trainable: list[nn.Parameter]) -> None:
    grouped = [id(p) for group in groups for p in group["params"]]
    if sorted(grouped) != sorted(id(p) for p in trainable):
        raise ValueError(f"Model '{name}' declares parameter groups that do not hold each of its trainable "
                         "parameters exactly once; fix its param_groups function.")
    scales = [group.get("lr_scale", 1.0) for group in groups]
    if not all(isinstance(s, (int, float)) and not isinstance(s, bool) and 0 < s < float("inf") for s in scales):
        raise ValueError(f"Model '{name}' declares an lr_scale that is not a positive number ({scales}).")
    epochs = [group["train_epochs"] for group in groups if "train_epochs" in group]
    if not all(isinstance(e, (int, float)) and not isinstance(e, bool) and e >= 0 for e in epochs):
        raise ValueError(f"Model '{name}' declares train_epochs that are not a number of epochs ({epochs}).")


def cam_layer_of(model: nn.Module, name: str) -> nn.Module:
    """The module of `model` (built as registered model `name`) whose output Grad-CAM looks at."""
    layer = _spec(name).cam_layer
    if layer is None:
        raise ValueError(f"Model '{name}' names no layer to show where it looked; register it with cam_layer=.")
    try:
        return model.get_submodule(layer)
    except AttributeError:
        raise ValueError(f"Model '{name}' names '{layer}' as the layer to show where it looked, "
                         "but it has no such module; fix its cam_layer.") from None


def classifier_layer(model: nn.Module) -> nn.Linear:
    """The final classifier, an nn.Linear whose input is the penultimate features (the feature map's source).

    Every registered builder ends in one Linear that turns features into class scores, and registers it
    last of its Linear layers (tests/core/analysis/test_features.py checks this for each model). A model without any
    Linear cannot give features, and says so.
    """
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no final linear layer, so it cannot give picture features.")
    return linears[-1]


@functools.cache
def _parameter_count(name: str) -> int:
    # Built on the meta device: shapes only, no memory and no random init, so describing
    # every model for the picker costs milliseconds.
    with torch.device("meta"):
        model = _spec(name).builder(10)
    return sum(p.numel() for p in model.parameters())   # trainable and frozen alike


def describe_model(name: str) -> dict:
    """{"name", "description", "parameters"}; parameters: trainable + frozen, for 10 classes."""
    spec = _spec(name)
    return {"name": spec.name, "description": spec.description,
            "parameters": _parameter_count(name)}
