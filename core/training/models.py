"""Model registry and every CIFAR-10 architecture the trainer offers.

Usage (the dashboard's architecture picker, the trainer and the tests all go through these):

    list_models()                      # names in registration order; "fastnet" first (the default)
    get_model("resnet20", num_classes=10)
    describe_model("resnet20")         # {"name", "description", "parameters"}

Adding an architecture is adding one builder decorated with `@register_model(name, description)`
(the habit of torchvision's models/_api.py). A builder takes `num_classes` and returns an
nn.Module mapping (B, 3, 32, 32) normalised float images to (B, num_classes) logits. A model
that needs data for its initialisation defines `init_from_data(images)`; the trainer calls it
once before the first step (see core/training/fastnet.py). A model whose parameters want different
optimiser settings registers with `param_groups=`, a function of the built model and the run's
TrainConfig returning torch-style groups (nanoGPT's configure_optimizers, torchvision's
split_normalization_params): each a dict with "params" and any per-group optimiser setting
("weight_decay": 0.0 for norm layers, say), plus "lr_scale", a multiplier on the schedule's rate,
and "train_epochs", after which the group's rate is 0 (held still). Without one, every trainable
parameter is in one group. `parameter_groups(model, cfg)` is what the optimiser gets.
Each builder also names, with `cam_layer=`, the dotted name of the module whose (B, C, H, W) output
Grad-CAM looks at ("where it looked", core/analysis/saliency.py): the last one that still has a useful map
(at least 4x4). `cam_layer_of(model, name)` finds that module in a built model.

No module here hard-codes a device or dtype: models are built on the CPU (or under a
`torch.device(...)` context) and moved by the caller.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models.vgg import cfgs as vgg_cfgs
from torchvision.models.vgg import make_layers as vgg_make_layers

from core.training.fastnet import FastNet, FrozenScaleBatchNorm
from core.data.images import IMAGE_SIZE

if TYPE_CHECKING:  # for annotations only: core.rundir.config itself asks this registry which models exist
    from core.rundir.config import TrainConfig

__all__ = ["ModelSpec", "register_model", "list_models", "check_model_name", "get_model", "describe_model", "parameter_groups",
           "cam_layer_of", "classifier_layer"]


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
    """Refuse a model name no architecture is registered under, in TrainConfig's words."""
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
    last of its Linear layers (tests/test_features.py checks this for each model). A model without any
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


# ================================================================== shared helpers

def _kaiming_init(model: nn.Module) -> None:
    """He initialisation for convs (as torchvision's ResNet/VGG), BN at identity, zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _conv_stage(c_in: int, c_out: int, act: Callable[[], nn.Module], *, convs: int = 1,
                batch_norm: bool = False, dropout: float = 0.0) -> nn.Sequential:
    """`convs` x [3x3 'same' conv (+BN) + activation], then 2x2 max-pool (+dropout)."""
    layers: list[nn.Module] = []
    for i in range(convs):
        # A conv followed by BN needs no bias: BN's shift replaces it.
        conv_in = c_in if i == 0 else c_out
        layers.append(nn.Conv2d(conv_in, c_out, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(act())
    layers.append(nn.MaxPool2d(2))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


# ================================================================== the notebook family

class PlainCNN(nn.Module):
    """Conv stages that each halve the image, then one hidden dense layer and the classifier.

    The Keras-notebook style of network: no shortcuts, flatten instead of global pooling.
    """

    def __init__(self, num_classes: int, widths: Sequence[int], *, act: Callable[[], nn.Module],
                 hidden: int, dense_dropout: float, convs_per_stage: int = 1,
                 batch_norm: bool = False, stage_dropout: float = 0.0):
        super().__init__()
        channels = [3, *widths]
        self.features = nn.Sequential(*(
            _conv_stage(c_in, c_out, act, convs=convs_per_stage, batch_norm=batch_norm,
                        dropout=stage_dropout)
            for c_in, c_out in zip(channels[:-1], channels[1:])))
        side = IMAGE_SIZE // 2 ** len(widths)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(widths[-1] * side * side, hidden), act(), nn.Dropout(dense_dropout),
            nn.Linear(hidden, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)            # (B, widths[-1], 32 / 2^stages, 32 / 2^stages)
        return self.classifier(x)       # (B, num_classes)


class TutorialCNN(nn.Module):
    """The CNN of PyTorch's 'Deep Learning with PyTorch: A 60 Minute Blitz' tutorial."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(F.relu(self.conv1(x)))    # (B, 6, 14, 14)
        x = self.pool(F.relu(self.conv2(x)))    # (B, 16, 5, 5)
        x = torch.flatten(x, 1)                 # (B, 400)
        x = F.relu(self.fc1(x))                 # (B, 120)
        x = F.relu(self.fc2(x))                 # (B, 84)
        return self.fc3(x)                      # (B, num_classes)


# ================================================================== CIFAR ResNet (He et al. 2016)

class PadShortcut(nn.Module):
    """Option-A shortcut: subsample by the stride and zero-pad the new channels (no parameters)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.extra = out_channels - in_channels

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, ::self.stride, ::self.stride]                    # (B, C_in, H/s, W/s)
        half = self.extra // 2                                       # pad both sides of C
        return F.pad(x, (0, 0, 0, 0, half, self.extra - half))       # (B, C_out, H/s, W/s)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        changes_shape = stride != 1 or in_channels != out_channels
        self.shortcut = (PadShortcut(in_channels, out_channels, stride) if changes_shape
                         else nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))          # (B, C_out, H/s, W/s)
        out = self.bn2(self.conv2(out))                # (B, C_out, H/s, W/s)
        return F.relu(out + self.shortcut(x))          # (B, C_out, H/s, W/s)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR: 3x3 stem, 3 stages of n basic blocks (16/32/64), global avg pool."""

    def __init__(self, num_classes: int = 10, blocks_per_stage: int = 3,
                 widths: Sequence[int] = (16, 32, 64)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks: list[nn.Module] = []
        c_in = widths[0]
        for stage, c_out in enumerate(widths):
            for i in range(blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(c_in, c_out, stride))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(widths[-1], num_classes)
        _kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(self.stem(x))      # (B, 64, 8, 8)
        x = x.mean(dim=(2, 3))             # (B, 64) global average pool
        return self.fc(x)                  # (B, num_classes)


# ================================================================== torchvision adaptations

class VGG11BN(nn.Module):
    """torchvision's VGG-11-BN conv stack (5 max-pools: 32x32 -> 1x1x512) with a small classifier.

    torchvision's own classifier expects 7x7x512 and has ~120M parameters; for 32x32 images a
    512-512-classes head is the usual CIFAR choice.
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = vgg_make_layers(vgg_cfgs["A"], batch_norm=True)
        self.classifier = nn.Sequential(nn.Linear(512, 512), nn.ReLU(inplace=True),
                                        nn.Dropout(0.5), nn.Linear(512, num_classes))
        _kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.features(x), 1)   # (B, 512)
        return self.classifier(x)                # (B, num_classes)


def cifar_resnet18(num_classes: int = 10) -> torchvision.models.ResNet:
    """torchvision's ResNet-18 with a 3x3 stride-1 stem and no max-pool: 32x32 is not shrunk 4x."""
    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model


# ================================================================== fastnet's optimiser groups

def _fastnet_groups(model: FastNet, cfg: TrainConfig) -> list[dict]:
    """BatchNorm shifts at cfg.norm_bias_lr_scale times the rate; the whitening bias trained for its first epochs."""
    shifts = [m.bias for m in model.modules() if isinstance(m, FrozenScaleBatchNorm)]
    special = {id(p) for p in [*shifts, model.whiten.bias]}
    rest = [p for p in model.parameters() if id(p) not in special]
    # airbench raises the shifts' rate, not their decay: SGD and AdamW shrink a weight by lr * weight_decay
    # a step, so dividing the decay by the rate's factor keeps the shrink per step the same as the others'.
    shift_group = {"params": shifts, "lr_scale": cfg.norm_bias_lr_scale,
                   "weight_decay": cfg.weight_decay / cfg.norm_bias_lr_scale}
    whiten_group = {"params": [model.whiten.bias]}
    if cfg.whiten_bias_epochs > 0:
        whiten_group["train_epochs"] = cfg.whiten_bias_epochs
    return [{"params": rest}, shift_group, whiten_group]


# ================================================================== registrations (picker order)

@register_model("fastnet", "The default: a speed-tuned network in the style of the airbench "
                           "CIFAR-10 record runs, built to reach about 94% accuracy in roughly "
                           "10 epochs on a GPU.", param_groups=_fastnet_groups,
                cam_layer="stages.1")  # 7x7; the last stage's 3x3 is too coarse to point at anything
def _fastnet(num_classes: int) -> nn.Module:
    return FastNet(num_classes, widths=(64, 256, 256))


@register_model("fastnet-small", "A narrower fastnet for laptops: about 4-5 times faster on a "
                                 "CPU, at the cost of a few points of accuracy.", param_groups=_fastnet_groups,
                cam_layer="stages.1")
def _fastnet_small(num_classes: int) -> nn.Module:
    return FastNet(num_classes, widths=(32, 64, 128))


@register_model("keras-cnn", "Small 3-layer network from the Keras notebooks; trains fast, "
                             "about 75% accuracy.",
                cam_layer="features.2.1")  # the last stage's activation, 8x8, before its pool
def _keras_cnn(num_classes: int) -> nn.Module:
    return PlainCNN(num_classes, (32, 64, 128), act=nn.ReLU, stage_dropout=0.25,
                    hidden=80, dense_dropout=0.5)


@register_model("elu-convnet", "Small 3-layer network with smooth (ELU) activations from the "
                               "notebooks; about 76% accuracy after 20 quick epochs.",
                cam_layer="features.2.1")
def _elu_convnet(num_classes: int) -> nn.Module:
    return PlainCNN(num_classes, (16, 32, 64), act=nn.ELU, hidden=512, dense_dropout=0.2)


@register_model("bn-elu-cnn", "A wider, 6-layer version of the ELU network with batch "
                              "normalisation, which makes it train faster and more reliably; "
                              "noticeably more accurate than the 3-layer ones.",
                cam_layer="features.2.5")  # second conv's activation of the last stage, 8x8
def _bn_elu_cnn(num_classes: int) -> nn.Module:
    return PlainCNN(num_classes, (32, 64, 128), act=nn.ELU, convs_per_stage=2,
                    batch_norm=True, hidden=512, dense_dropout=0.2)


@register_model("tutorial-cnn", "The tiny network from the official PyTorch beginner tutorial; "
                                "a baseline that trains in seconds but stays around 55-65% "
                                "accuracy.",
                cam_layer="conv2")  # 10x10, the last map before the dense layers
def _tutorial_cnn(num_classes: int) -> nn.Module:
    return TutorialCNN(num_classes)


@register_model("resnet20", "The classic small ResNet for CIFAR (20 layers with shortcut "
                            "connections, 0.27M parameters); about 91% accuracy with long "
                            "training.",
                cam_layer="blocks.8")  # the last block, 8x8
def _resnet20(num_classes: int) -> nn.Module:
    return CifarResNet(num_classes, blocks_per_stage=3)


@register_model("resnet18", "The standard ResNet-18 (11M parameters) adapted to small images; "
                            "among the most accurate here (about 95%) but slow without a GPU.",
                cam_layer="layer4")  # 4x4
def _resnet18(num_classes: int) -> nn.Module:
    return cifar_resnet18(num_classes)


@register_model("vgg11-bn", "VGG-11 with batch normalisation: a simple, deep stack of convolutions "
                            "(9M parameters); about 92% accuracy, slow without a GPU.",
                cam_layer="features.20")  # 4x4, before the last two pools shrink it to 1x1
def _vgg11_bn(num_classes: int) -> nn.Module:
    return VGG11BN(num_classes)
