"""FastNet: a speed-first CIFAR-10 network of the airbench family (Keller Jordan's record runs).

Registers two variants, first in the picker: "fastnet" (widths 64/256/256, the default) and
"fastnet-small" (32/64/128), with their optimiser groups (BatchNorm shifts at their own rate, the
whitening bias trained for its first epochs only).

The tricks, and why each one is here:
- Patch whitening: the first layer is a frozen 2x2 conv whose 12 filters decorrelate the
  2x2x3 pixel patches of the training data (eigenvectors of their covariance divided by the
  square root of the eigenvalue), plus the 12 negated filters so the GELU after it loses no
  information. The net starts from features of unit variance and need not learn them.
  `init_from_data(images)` sets these filters; only the bias is trained.
- Dirac (identity) initialisation of the 3x3 convs: each conv starts as (part) identity so the
  signal passes through a deep, residual-free net from the first step.
- BatchNorm with frozen scale 1 and a trainable shift: fewer parameters to tune, and the
  following conv's weights can play the role of the scale.
- BatchNorm running statistics with a fast update (PyTorch momentum 0.4, i.e. airbench's
  `batchnorm_momentum=0.6` in its "weight kept on the old value" convention): training is only a
  few epochs with large steps, so the running averages must follow the weights quickly or the
  evaluation-mode statistics lag behind the trained network.
- Global max pooling (airbench's MaxPool2d(3) on the final 3x3 map, written as a max pool whose
  window is the whole map: same result, any input size, deterministic backward on cuda, unlike an
  adaptive max pool; not `amax` over the spatial dims, whose backward under torch.compile with bf16
  autocast on the CPU turned every gradient but the head's into NaN) and a bias-free linear head
  whose logits are scaled by a constant (1/9): the scale keeps early logits small so the loss
  starts in a well-behaved regime.

Device- and precision-agnostic: no hard-coded device, works with channels_last and under
torch.autocast (bf16 on cpu and cuda); the whitening statistics are computed in float64
(float32 on mps, which lacks float64) whatever the input dtype, and the 12x12
eigendecomposition runs on the CPU so it is deterministic on every device.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.training.models.registry import register_model

if TYPE_CHECKING:
    from core.rundir.config import TrainConfig

# ------------------------------------------------------------------ constants

WHITEN_KERNEL = 2                    # side of the whitened pixel patches
WHITEN_EPS = 5e-4                    # added to the eigenvalues: keeps near-null directions bounded
WHITEN_MAX_IMAGES = 5000             # enough for a 12x12 covariance; keeps init under a second
WHITEN_CHUNK = 500                   # images per chunk: bounds memory of the patch matrix
BN_MOMENTUM = 0.4                    # PyTorch sense: running = 0.6 * running + 0.4 * batch
BN_EPS = 1e-12                       # as airbench: the frozen scale makes a larger eps unnecessary
LOGIT_SCALE = 1 / 9                  # airbench's output scaling


# ------------------------------------------------------------------ building blocks

class FrozenScaleBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose scale is fixed at 1 (not trained) and whose shift is trained."""

    def __init__(self, num_features: int, momentum: float = BN_MOMENTUM, eps: float = BN_EPS):
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.weight.requires_grad_(False)


class DiracConv(nn.Conv2d):
    """Bias-free 3x3 'same' conv initialised as identity on its first min(in, out) filters."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=3, padding=1, bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()   # default Kaiming-uniform for the filters that are not identity
        w = self.weight.data         # (out, in, 3, 3)
        nn.init.dirac_(w[: min(self.in_channels, self.out_channels)])


def conv_unit(in_channels: int, out_channels: int, *, halve: bool = False) -> nn.Sequential:
    """3x3 conv [-> 2x2 max-pool] -> BatchNorm (shift only) -> GELU; (B, in, H, W) -> (B, out, H', W').

    With `halve`, the map is pooled before the norm, so the norm's statistics describe what is kept.
    """
    layers: list[tuple[str, nn.Module]] = [("conv", DiracConv(in_channels, out_channels))]
    if halve:
        layers.append(("pool", nn.MaxPool2d(2)))
    layers += [("norm", FrozenScaleBatchNorm(out_channels)), ("act", nn.GELU())]
    return nn.Sequential(OrderedDict(layers))


class Stage(nn.Sequential):
    """One resolution level: `enter` widens to out_channels and halves the map, `refine` works at that size.

    (B, in, H, W) -> (B, out, H/2, W/2).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(OrderedDict(enter=conv_unit(in_channels, out_channels, halve=True),
                                     refine=conv_unit(out_channels, out_channels)))


# ------------------------------------------------------------------ patch whitening

def _autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _patch_matrix(images: Tensor, kernel: int, dtype: torch.dtype) -> Tensor:
    """All kernel x kernel patches as rows, ordered (c, i, j) like a conv filter's weights."""
    patches = images.to(dtype).unfold(2, kernel, 1).unfold(3, kernel, 1)  # (N, C, H', W', k, k)
    patches = patches.permute(0, 2, 3, 1, 4, 5)                           # (N, H', W', C, k, k)
    return patches.reshape(-1, images.shape[1] * kernel * kernel)         # (N*H'*W', C*k*k)


def patch_covariance(images: Tensor, kernel: int = WHITEN_KERNEL) -> Tensor:
    """Covariance (mean-centred) of all kernel x kernel patches, as a float64 CPU matrix.

    Accumulated chunk by chunk on the images' device in float64 (float32 on mps, which has no
    float64). The per-channel image mean is subtracted first, so the one-pass formula
    E[pp^T] - E[p]E[p]^T does not lose precision to a large mean.
    """
    acc_dtype = torch.float32 if images.device.type == "mps" else torch.float64
    shift = images.to(acc_dtype).mean(dim=(0, 2, 3), keepdim=True)     # (1, C, 1, 1)
    dim = images.shape[1] * kernel * kernel
    total = torch.zeros(dim, dtype=acc_dtype, device=images.device)
    moment = torch.zeros(dim, dim, dtype=acc_dtype, device=images.device)
    count = 0
    with _autocast_off(images.device.type):   # the caller may be inside autocast: keep precision
        for chunk in images.split(WHITEN_CHUNK):
            rows = _patch_matrix(chunk.to(acc_dtype) - shift, kernel, acc_dtype)   # (P, D)
            total += rows.sum(dim=0)
            moment += rows.T @ rows
            count += rows.shape[0]
    mean = total / count                                                # (D,)
    cov = moment / count - torch.outer(mean, mean)                      # (D, D)
    return cov.to("cpu", torch.float64)


def whitening_filters(images: Tensor, kernel: int = WHITEN_KERNEL,
                      eps: float = WHITEN_EPS) -> Tensor:
    """Filters (D, C, k, k), D = C*k*k, that map patches to decorrelated, unit-variance outputs.

    Row d is eigenvector d / sqrt(eigenvalue d + eps), largest eigenvalue first. The
    eigendecomposition runs on the CPU in float64, so the same images give the same filters.
    """
    channels = images.shape[1]
    eigenvalues, eigenvectors = torch.linalg.eigh(patch_covariance(images, kernel))
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)   # descending order
    scaled = eigenvectors.T / torch.sqrt(eigenvalues.clamp(min=0) + eps).unsqueeze(1)  # (D, D)
    return scaled.reshape(-1, channels, kernel, kernel)   # (D, C, k, k)


# ------------------------------------------------------------------ network

class FastNet(nn.Module):
    """Airbench-style residual-free CNN: frozen whitening conv, three stages, max-pool head.

    Input (B, 3, 32, 32) normalised float; output (B, num_classes) logits.
    Call `init_from_data(train_images)` once before training to set the whitening filters.
    """

    def __init__(self, num_classes: int = 10, widths: Sequence[int] = (64, 256, 256),
                 in_channels: int = 3):
        super().__init__()
        whiten_width = 2 * in_channels * WHITEN_KERNEL * WHITEN_KERNEL   # filters and negatives
        self.whiten = nn.Conv2d(in_channels, whiten_width, kernel_size=WHITEN_KERNEL, bias=True)
        self.whiten.weight.requires_grad_(False)   # set from data, never trained
        nn.init.zeros_(self.whiten.bias)
        self.act = nn.GELU()
        channels = [whiten_width, *widths]
        self.stages = nn.Sequential(*(Stage(c_in, c_out) for c_in, c_out in zip(channels[:-1], channels[1:])))
        self.head = nn.Linear(widths[-1], num_classes, bias=False)
        self.logit_scale = LOGIT_SCALE

    @torch.no_grad()
    def init_from_data(self, images: Tensor) -> None:
        """Set the whitening filters from normalised training images (N, 3, H, W) on any device.

        Uses the first WHITEN_MAX_IMAGES images (deterministic); any float dtype is accepted.
        """
        channels = self.whiten.in_channels
        if images.ndim != 4 or images.shape[1] != channels or min(images.shape[2:]) < 2:
            raise ValueError(f"init_from_data needs images shaped (N, {channels}, H, W) "
                             f"with H, W >= 2; got {tuple(images.shape)}.")
        if not images.is_floating_point():
            raise ValueError("init_from_data needs normalised float images; "
                             f"got dtype {images.dtype}.")
        if images.shape[0] == 0:
            raise ValueError("init_from_data needs at least one training image; got none.")
        filters = whitening_filters(images[:WHITEN_MAX_IMAGES])             # (12, 3, 2, 2)
        weight = self.whiten.weight                                         # (24, 3, 2, 2)
        weight.copy_(torch.cat((filters, -filters)).to(weight.device, weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.whiten(x))                    # (B, 24, 31, 31)
        x = self.stages(x)                              # (B, widths[-1], 3, 3)
        x = F.max_pool2d(x, x.shape[-2:]).flatten(1)    # (B, widths[-1]) global max pool
        return self.head(x) * self.logit_scale          # (B, num_classes)


# ------------------------------------------------------------------ optimiser groups and registrations

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
