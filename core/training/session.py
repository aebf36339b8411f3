"""What one training run holds while it trains: data on the device, model, optimiser, weight average,
trackers and progress, and how all of it goes into a checkpoint and comes back on resume."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from core.data import DeviceLoader, ImageSet, channel_stats, load_dataset, split_train_val
from core.data.augment import Augment
from core.data.split import split_fold
from core.rundir.config import TrainConfig
from core.training.device import amp_dtype, memory_format
from core.training.distributed import SOLO, Solo
from core.training.ema import Lookahead, WeightAverage
from core.training.inference import images_to_tensor
from core.training.models import get_model, parameter_groups
from core.training.schedules import PlateauTracker


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The configured optimiser over the model's parameter groups; a group's own settings win over the config's."""
    params = parameter_groups(model, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    optim_cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return optim_cls(params, lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.weight_decay)


def held_out_split(cfg: TrainConfig, pictures: ImageSet) -> tuple[ImageSet, ImageSet]:
    """(the pictures a run learns from, its validation pictures): its stratified validation share, or under
    K-fold its held-out fold, so that fold's predictions are out-of-fold. The feature map computed later for an
    old run takes its training pictures from here too."""
    if cfg.folds:
        return split_fold(pictures, cfg.folds, cfg.fold, cfg.split_seed)
    return split_train_val(pictures, cfg.val_fraction, cfg.split_seed)


@dataclass
class Progress:
    """Where the run is: saved in every checkpoint so a resume carries on exactly."""
    epoch: int = 0  # completed epochs
    batch: int = 0  # batches done in the current (unfinished) epoch
    step: int = 0  # optimiser steps so far
    best_val_acc: float | None = None
    best_val_loss: float = math.inf
    stopped_early: bool = False


class Session:
    """Everything one call of `train` holds: data on the device, model, optimiser, trackers.

    In a torchrun team (core.training.distributed) the loader holds this rank's shard of the training split and
    serves its share of every batch; everything else is the whole run's.
    """

    def __init__(self, cfg: TrainConfig, run_dir: Path, device: torch.device, team: Solo = SOLO):
        self.cfg, self.run_dir, self.device = cfg, run_dir, device
        self.amp = amp_dtype(cfg.precision, device)
        self.memory_format = memory_format(device)
        data = load_dataset(cfg.data, cfg.data_dir or None)
        self.classes = list(data.classes)
        train_set, self.val_set = held_out_split(cfg, data.train)
        self.train_set = train_set  # kept for the feature map's look-alikes at the end (core/training/feature_map.py)
        self.test_set = data.test
        mean, std = (channel_stats(train_set.images, grayscale=cfg.grayscale) if cfg.normalize
                     else ((0.0,) * 3, (1.0,) * 3))
        self.norm = {"mean": list(mean), "std": list(std), "grayscale": cfg.grayscale}
        shard = team.shard(train_set)
        self.loader = DeviceLoader(
            shard.images, shard.labels, batch_size=team.local_batch(cfg.batch_size), device=device, shuffle=True,
            augment=Augment(crop_padding=cfg.crop_padding, flip=cfg.flip, cutout=cfg.cutout),
            mean=mean, std=std, grayscale=cfg.grayscale, seed=cfg.seed, drop_last=len(train_set) > cfg.batch_size,
            channels_last=self.memory_format is torch.channels_last)
        self.normalize = self.loader.normalize  # one normaliser for training, evaluation and initialisation
        self.val_images = images_to_tensor(self.val_set.images, device)
        self.val_labels = torch.from_numpy(self.val_set.labels).to(device)

        torch.manual_seed(cfg.seed)
        self.model = get_model(cfg.model, len(self.classes)).to(device, memory_format=self.memory_format)
        # The compiled wrapper runs the training steps; checkpoints and evaluation use the plain module.
        self.step_model = torch.compile(self.model) if cfg.compile else self.model
        self.optimizer = build_optimizer(cfg, self.model)
        self.ema = WeightAverage(self.model, cfg.ema) if cfg.ema > 0 else None  # on the model's device
        self.lookahead = (Lookahead(self.optimizer, cfg.lookahead_every, cfg.epochs * len(self.loader))
                          if cfg.lookahead_every else None)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.plateau = PlateauTracker(cfg.plateau_patience, cfg.plateau_factor)
        self.early = PlateauTracker(cfg.early_stopping, 1.0)
        self.progress = Progress()

    def train_through(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        """Train through `wrap(model)` (DDP), compiled when the config asks; checkpoints keep the plain module."""
        wrapped = wrap(self.model)
        self.step_model = torch.compile(wrapped) if self.cfg.compile else wrapped

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def init_model_from_data(self) -> None:
        init = getattr(self.model, "init_from_data", None)
        if init is not None:
            sample = self.loader.images[:5000]  # (N, 3, 32, 32) uint8 on the device
            init(self.normalize(sample))
            if self.ema is not None:  # the average starts from the initialised weights
                self.ema.module.load_state_dict(self.model.state_dict())

    # --- checkpoints ---
    def checkpoint(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "model": self.cfg.model, "classes": self.classes, "config": self.cfg.to_dict(),
            "metrics": metrics, "normalization": self.norm,
            "model_state": self.eval_model.state_dict(), "train_model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            **self.trackers(), "rng_cpu": torch.get_rng_state(), **self._cuda_rng(),
        }

    def trackers(self) -> dict[str, Any]:
        """Where the run is and what validation has decided so far (in checkpoints; rank 0 sends it to the others)."""
        return {"progress": vars(self.progress).copy(), "plateau": self.plateau.state(), "early": self.early.state()}

    def load_trackers(self, trackers: dict[str, Any]) -> None:
        self.progress = Progress(**trackers["progress"])
        self.plateau.load(trackers["plateau"])
        self.early.load(trackers["early"])

    def _cuda_rng(self) -> dict[str, list[torch.Tensor]]:
        """The GPU generators' states (one per visible GPU), for a run on CUDA; nothing otherwise."""
        return {"rng_cuda": torch.cuda.get_rng_state_all()} if self.device.type == "cuda" else {}

    def restore(self, payload: dict[str, Any]) -> None:
        self.model.load_state_dict(payload["train_model_state"])
        if self.ema is not None:
            self.ema.module.load_state_dict(payload["model_state"])
        self.optimizer.load_state_dict(payload["optimizer_state"])
        self.load_trackers(payload)
        torch.set_rng_state(payload["rng_cpu"])
        self._restore_cuda_rng(payload.get("rng_cuda"))

    def _restore_cuda_rng(self, states: list[torch.Tensor] | None) -> None:
        # Only onto the same number of GPUs: a checkpoint from another machine or a CPU run has none to match.
        if self.device.type == "cuda" and states is not None and len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
