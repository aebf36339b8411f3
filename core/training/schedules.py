"""Learning-rate schedules as pure functions of the step, plus the one stateful rule (plateau).

`lr_at` is called every step by the engine and unit-tested on its own; the plateau tracker also
drives early stopping, since both watch the validation loss for epochs without progress.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from core.rundir.config import TrainConfig


def lr_at(cfg: TrainConfig, step: int, steps_per_epoch: int, plateau_scale: float = 1.0) -> float:
    """The learning rate for optimiser step `step` (0-based) of a run of `cfg.epochs` epochs."""
    total = max(1, cfg.epochs * steps_per_epoch)
    progress = min(step / total, 1.0)
    warmup = cfg.warmup_epochs * steps_per_epoch
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "plateau":
        return cfg.lr * plateau_scale
    if cfg.schedule == "step":
        return cfg.lr * cfg.step_gamma ** (step // (cfg.step_every * steps_per_epoch))
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    # onecycle and linear: warm up linearly from lr_start_fraction of the peak, then come down to lr_end_fraction.
    start, end = cfg.lr_start_fraction, cfg.lr_end_fraction
    if step < warmup:
        return cfg.lr * (start + (1.0 - start) * step / warmup)
    down = min((step - warmup) / max(1.0, total - warmup), 1.0)
    if cfg.schedule == "onecycle":
        return cfg.lr * (end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * down)))
    return cfg.lr * (1.0 - (1.0 - end) * down)  # linear


@dataclass
class PlateauTracker:
    """Counts epochs without validation-loss progress; cuts the rate by `factor` after `patience`."""
    patience: int
    factor: float
    best: float = math.inf
    bad_epochs: int = 0
    scale: float = 1.0
    since_cut: int = 0

    def update(self, val_loss: float) -> None:
        if val_loss < self.best - 1e-4:
            self.best, self.bad_epochs, self.since_cut = val_loss, 0, 0
            return
        self.bad_epochs += 1
        self.since_cut += 1
        if self.since_cut > self.patience:
            self.scale *= self.factor
            self.since_cut = 0

    def state(self) -> dict[str, float]:
        return {"best": self.best, "bad_epochs": self.bad_epochs, "scale": self.scale, "since_cut": self.since_cut}

    def load(self, state: dict[str, float]) -> None:
        self.best, self.scale = float(state["best"]), float(state["scale"])
        self.bad_epochs, self.since_cut = int(state["bad_epochs"]), int(state["since_cut"])
