"""The deeper networks: the CIFAR ResNet-20 of He et al. (2016), and torchvision's ResNet-18 and VGG-11-BN
adapted to 32x32 pictures.

Registers, in the picker's order after the small CNNs: resnet20, resnet18, vgg11-bn.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models.vgg import cfgs as vgg_cfgs
from torchvision.models.vgg import make_layers as vgg_make_layers

from core.training.models.registry import register_model


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


# ================================================================== registrations (picker order)

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
