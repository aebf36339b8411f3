"""The small CNNs of the notebooks and tutorials: plain conv stages, a dense layer, the classifier.

Registers, in the picker's order after fastnet: keras-cnn, elu-convnet, bn-elu-cnn, tutorial-cnn.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.data.images import IMAGE_SIZE
from core.training.models.registry import register_model


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


# ================================================================== registrations (picker order)

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
