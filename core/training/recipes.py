"""Named recipes: TrainConfig settings with a title and a plain-words description.

The dashboard's presets, the command line's `--preset` and the benchmark's rows all come from here,
so "Quick demo" means the same thing everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from core.rundir.config import TrainConfig


@dataclass(frozen=True)
class Preset:
    title: str
    description: str
    settings: dict[str, Any]


# airbench94's last refinements, on in best-gpu only; written out (off) in every other preset, so that choosing a
# preset on the Train page also switches off what the one chosen before turned on.
AIRBENCH_EXTRAS = ("lr_start_fraction", "lr_end_fraction", "norm_bias_lr_scale", "whiten_bias_epochs",
                   "lookahead_every")
_EXTRAS_OFF = {f.name: f.default for f in fields(TrainConfig) if f.name in AIRBENCH_EXTRAS}

# The fastnet recipe (airbench family): label smoothing 0.2, Nesterov SGD with high momentum and a
# linearly decaying rate, alternating flips, 2-pixel translations, mirror + shift test-time augmentation.
# Rates are airbench94's (lr 11.5 and weight decay 0.0153 per 1024 examples at momentum 0.85, summed loss)
# rewritten for PyTorch SGD on a mean loss: lr = 1.5 * batch_size / 1024 and weight_decay = 1.33e-3 (the
# same shrink per step), warming up over the first ~23% of training.
_FASTNET = dict(_EXTRAS_OFF, optimizer="sgd", momentum=0.85, nesterov=True, schedule="linear", weight_decay=1.33e-3,
                label_smoothing=0.2, crop_padding=2, flip="alternating", cutout=0, tta=True)

PRESETS: dict[str, Preset] = {
    "quick-demo": Preset(
        "Quick demo",
        "A small fast network that reaches a useful accuracy in a few minutes, even on a laptop without a GPU.",
        # 6 epochs: 85.2% test accuracy on the JPEG CIFAR-10 images, about 2.5 minutes on a 2-core CPU.
        # No feature map at the end: on that CPU it takes about as long again (2.5 min, mostly the training
        # split's features and t-SNE), and a demo waits for "completed"; the Map page computes it on demand.
        dict(_FASTNET, model="fastnet-small", epochs=6, batch_size=512, lr=0.75, warmup_epochs=1.4,
             val_fraction=0.1, feature_map=False)),
    "notebook-classic": Preset(
        "Notebook classic",
        "The ELU network of the original notebooks, trained the same way: Adam, batches of 250, 20 epochs.",
        dict(_EXTRAS_OFF, model="elu-convnet", optimizer="adam", lr=1e-3, momentum=0.9, nesterov=False, weight_decay=0.0,
             schedule="constant", warmup_epochs=0.0, batch_size=250, epochs=20, crop_padding=4, flip="random",
             label_smoothing=0.0, tta=False, val_fraction=0.1)),
    "best-gpu": Preset(
        "Best accuracy (GPU)",
        "The full-size fast network with every trick; about 94% on the official images, seconds on a GPU.",
        # airbench94's rate: from 0.2x up to the peak over the first 23% of training, then straight down to 0.07x;
        # BatchNorm shifts at 64x the rate (same decay per step); the whitening bias held still after 3 epochs;
        # the weights pulled onto their slow average every 5 steps.
        dict(_FASTNET, model="fastnet", epochs=10, batch_size=1024, lr=1.5, warmup_epochs=2.3, val_fraction=0.0,
             lr_start_fraction=0.2, lr_end_fraction=0.07, norm_bias_lr_scale=64.0, whiten_bias_epochs=3.0,
             lookahead_every=5)),
    # Not a speed record: the textbook recipe, expected about 94-95% on the official images.
    "resnet18-standard": Preset(
        "ResNet-18 (standard)",
        "The classic ResNet-18 recipe: Nesterov SGD, one-cycle rate, crops and flips, 30 epochs. Slow without a GPU.",
        dict(_EXTRAS_OFF, model="resnet18", optimizer="sgd", lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4,
             schedule="onecycle", warmup_epochs=2.0, epochs=30, batch_size=512, label_smoothing=0.0,
             crop_padding=4, flip="random", cutout=0, tta=False, ema=0.0, val_fraction=0.1)),
}


def preset_config(name: str, **overrides: Any) -> TrainConfig:
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of: {', '.join(PRESETS)}.")
    return TrainConfig(**{**PRESETS[name].settings, **overrides})
