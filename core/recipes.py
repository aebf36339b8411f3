"""Named recipes: TrainConfig settings with a title and a plain-words description.

The dashboard's presets, the command line's `--preset` and the benchmark's rows all come from here,
so "Quick demo" means the same thing everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import TrainConfig


@dataclass(frozen=True)
class Preset:
    title: str
    description: str
    settings: dict[str, Any]


# The fastnet recipe (airbench family): label smoothing 0.2, Nesterov SGD with high momentum and a
# linearly decaying rate, alternating flips, 2-pixel translations, mirror + shift test-time augmentation.
_FASTNET = dict(optimizer="sgd", momentum=0.85, nesterov=True, schedule="linear", warmup_epochs=0.5,
                label_smoothing=0.2, crop_padding=2, flip="alternating", cutout=0, tta=True)

PRESETS: dict[str, Preset] = {
    "quick-demo": Preset(
        "Quick demo",
        "A small fast network that reaches a useful accuracy in a few minutes, even on a laptop without a GPU.",
        dict(_FASTNET, model="fastnet-small", epochs=8, batch_size=512, lr=0.2, weight_decay=5e-4,
             val_fraction=0.1)),
    "notebook-classic": Preset(
        "Notebook classic",
        "The ELU network of the original notebooks, trained the same way: Adam, batches of 250, 20 epochs.",
        dict(model="elu-convnet", optimizer="adam", lr=1e-3, momentum=0.9, nesterov=False, weight_decay=0.0,
             schedule="constant", warmup_epochs=0.0, batch_size=250, epochs=20, crop_padding=4, flip="random",
             label_smoothing=0.0, tta=False, val_fraction=0.1)),
    "best-gpu": Preset(
        "Best accuracy (GPU)",
        "The full-size fast network with every trick; about 94% on the official images, seconds on a GPU.",
        dict(_FASTNET, model="fastnet", epochs=10, batch_size=1024, lr=0.2, weight_decay=5e-4, val_fraction=0.0)),
}


def preset_config(name: str, **overrides: Any) -> TrainConfig:
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of: {', '.join(PRESETS)}.")
    return TrainConfig(**{**PRESETS[name].settings, **overrides})
