"""The training configuration: one frozen dataclass that validates itself.

A run is rebuilt from its `config.json` alone (`TrainConfig.from_dict`). The command line builds one
flag per field from `fields(TrainConfig)`, and the dashboard's Train page fills the same fields, so a
run started anywhere carries the same settings. Invalid values raise `ValueError` with one sentence
naming the field and what is allowed.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle", "linear", "plateau")
FLIPS = ("none", "random", "alternating")
PRECISIONS = ("auto", "fp32", "bf16")
KEYWORD_SOURCES = ("cifar10", "synthetic")  # data sources that are names, not paths
MAX_FOLDS = 20  # K-fold: more folds barely change the held-out predictions and cost a run each
MAX_SEED = 2**32 - 1  # what every generator a seed reaches accepts (scikit-learn's split: below 2**32)
MAX_LR = 10.0  # the highest peak learning rate a run accepts (the sweep form caps its default range here too)


def _choices(*values: str) -> dict:
    return {"choices": values}


# ASCII digits only: Python's str.isdigit() also accepts '٣' or '²', which torch cannot parse.
_DEVICE_NAME = re.compile(r"(auto|cpu|mps|cuda)(:[0-9]{1,4})?", re.ASCII)
DEVICE_NAME_RULE = "auto, cpu, mps, cuda or cuda:N (N a GPU number such as 0 or 1)"


def is_device_name(name: object) -> bool:
    """Whether `name` is spelled as a device (only cuda takes a number); says nothing about this machine."""
    match = isinstance(name, str) and _DEVICE_NAME.fullmatch(name)
    return bool(match) and (match.group(2) is None or match.group(1) == "cuda")


@dataclass(frozen=True)
class TrainConfig:
    # --- what to train on ---
    model: str = "fastnet-small"  # a name from core.training.models.list_models()
    data: str = "cifar10"  # "cifar10", "synthetic", or a folder/.tar.gz/.zip in ImageFolder layout
    data_dir: str = ""  # where cifar10 is downloaded and caches live; "" = <repo>/data
    val_fraction: float = 0.1  # share of train held out for validation, 0 to 0.5 (stratified)
    split_seed: int = 0  # seed of the train/validation split
    folds: int = 0  # K-fold: split the training set into this many folds and hold one out instead of val_fraction; 0 = off
    fold: int = 0  # with folds: which fold (0 to folds - 1) is held out as the validation split
    grayscale: bool = False  # train on luminance only (replicated to 3 channels)
    normalize: bool = True  # subtract the training mean and divide by the std, per channel

    # --- optimisation ---
    epochs: int = 10  # passes over the training split
    batch_size: int = 256  # images per step
    optimizer: str = field(default="sgd", metadata=_choices(*OPTIMIZERS))
    lr: float = 0.05  # peak learning rate
    momentum: float = 0.9  # SGD momentum (Adam's beta1)
    nesterov: bool = True  # Nesterov momentum (SGD only)
    weight_decay: float = 5e-4  # L2 penalty (decoupled for AdamW)
    schedule: str = field(default="onecycle", metadata=_choices(*SCHEDULES))
    warmup_epochs: float = 1.0  # linear warm-up for onecycle and linear schedules, in epochs
    lr_start_fraction: float = 0.1  # onecycle and linear: the warm-up starts at this share of the peak rate
    lr_end_fraction: float = 0.0  # onecycle and linear: the rate comes down to this share of the peak at the end
    step_every: int = 10  # step schedule: multiply the rate by step_gamma every this many epochs
    step_gamma: float = 0.1  # step schedule factor
    plateau_patience: int = 2  # plateau schedule: epochs without validation-loss progress before a cut
    plateau_factor: float = 0.5  # plateau schedule: factor of each cut
    label_smoothing: float = 0.0  # 0 to <1
    early_stopping: int = 0  # stop after this many epochs without validation-loss progress; 0 = off
    ema: float = 0.0  # decay of an exponential moving average of the weights used for evaluation; 0 = off
    norm_bias_lr_scale: float = 1.0  # fastnet: BatchNorm shifts learn this many times faster (same decay per step)
    whiten_bias_epochs: float = 0.0  # fastnet: the whitening layer's bias stops learning after these epochs; 0 = never
    lookahead_every: int = 0  # steps between pulls of the weights onto a slow average of them (lookahead); 0 = off

    # --- augmentation (on the device) ---
    crop_padding: int = 4  # random translation up to this many pixels; 0 = off
    flip: str = field(default="random", metadata=_choices(*FLIPS))
    cutout: int = 0  # side of a random square blanked out, in pixels; 0 = off
    tta: bool = False  # test-time augmentation: weigh the answers for the image, its mirror and 1-pixel shifts
    feature_map: bool = True  # at the end, save the features and t-SNE map of the test set (core/analysis/features.py)

    # --- machinery ---
    seed: int = 0  # makes a CPU run repeatable
    device: str = "auto"  # "auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:1", "mps"
    precision: str = field(default="auto", metadata=_choices(*PRECISIONS))  # auto: bf16 on CUDA and bf16-capable CPUs
    compile: bool = False  # torch.compile the training step (slow first epoch, faster after; CUDA mostly)
    log_every: int = 20  # steps between train-metric records (metrics leave the device only then)
    checkpoint_every: float = 60.0  # seconds of training between mid-epoch checkpoints; 0 = at epoch ends only

    def __post_init__(self) -> None:
        for problem in _problems(self):
            raise ValueError(problem)

    # --- (de)serialisation ---
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict, refusing unknown keys (a typo must not be silently ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown config field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}.")
        return cls(**_coerce(cls, values))

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _coerce(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """JSON and forms hand ints where floats are meant (1 for 1.0); accept those, refuse the rest."""
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    out = {}
    for name, value in values.items():
        expected = types[name]
        if expected == "float" and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:  # a 400-digit number in a hand-edited config.json or sweep.json
                raise ValueError(f"{name} must be a finite number, got a whole number too large for one "
                                 f"({value.bit_length()} bits).") from None
        out[name] = value
    return out


# ---------------------------------------------------------------------------------------------
# Validation: each check yields one sentence naming the field and what is allowed.
# ---------------------------------------------------------------------------------------------

_PY_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def _problems(cfg: TrainConfig):
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        expected = _PY_TYPES[f.type]
        # bool is an int in Python; refuse True for an int field and 1 for a bool field.
        if type(value) is not expected:
            yield f"{f.name} must be a {f.type}, got {value!r}."
            return
        if expected is float and not math.isfinite(value):
            yield f"{f.name} must be a finite number, got {value!r}."
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            yield f"{f.name} must be one of {', '.join(choices)}, got {value!r}."
    yield from _range_problems(cfg)


def _range_problems(cfg: TrainConfig):
    # Whether `model` names a registered architecture is the training wing's check
    # (core.training.models.check_model_name): the run folder lists runs of any architecture.
    if not cfg.model.strip():
        yield "model must name an architecture, got an empty value."
    if not cfg.data.strip():
        keywords = ", ".join(map(repr, KEYWORD_SOURCES))
        yield f"data must be {keywords}, or the path of a folder or archive, got an empty value."
    checks = [
        (0.0 <= cfg.val_fraction <= 0.5, "val_fraction must be between 0 and 0.5"),
        (cfg.folds == 0 or 2 <= cfg.folds <= MAX_FOLDS, f"folds must be 0 (off) or between 2 and {MAX_FOLDS}"),
        (0 <= cfg.fold < max(cfg.folds, 1), "fold must be between 0 and folds - 1 (0 when folds is 0)"),
        (1 <= cfg.epochs <= 10_000, "epochs must be between 1 and 10000"),
        (1 <= cfg.batch_size <= 65_536, "batch_size must be between 1 and 65536"),
        (0.0 < cfg.lr <= MAX_LR, f"lr must be greater than 0 and at most {MAX_LR:g}"),
        (0.0 <= cfg.momentum < 1.0, "momentum must be at least 0 and below 1"),
        (not (cfg.nesterov and cfg.optimizer == "sgd" and cfg.momentum == 0.0),
         "nesterov needs a momentum above 0 (set momentum or turn nesterov off)"),
        (0.0 <= cfg.weight_decay <= 1.0, "weight_decay must be between 0 and 1"),
        (0.0 <= cfg.warmup_epochs <= cfg.epochs, "warmup_epochs must be between 0 and epochs"),
        (0.0 <= cfg.lr_start_fraction <= 1.0, "lr_start_fraction must be between 0 and 1"),
        (0.0 <= cfg.lr_end_fraction <= 1.0, "lr_end_fraction must be between 0 and 1"),
        (cfg.step_every >= 1, "step_every must be at least 1"),
        (0.0 < cfg.step_gamma <= 1.0, "step_gamma must be greater than 0 and at most 1"),
        (cfg.plateau_patience >= 0, "plateau_patience must be 0 or more"),
        (0.0 < cfg.plateau_factor < 1.0, "plateau_factor must be between 0 and 1 (exclusive)"),
        (0.0 <= cfg.label_smoothing < 1.0, "label_smoothing must be at least 0 and below 1"),
        (cfg.early_stopping >= 0, "early_stopping must be 0 (off) or a number of epochs"),
        (0.0 <= cfg.ema < 1.0, "ema must be at least 0 (off) and below 1"),
        (0.0 < cfg.norm_bias_lr_scale <= 1000.0, "norm_bias_lr_scale must be greater than 0 and at most 1000"),
        (0.0 <= cfg.whiten_bias_epochs <= 10_000, "whiten_bias_epochs must be between 0 (never stop) and 10000"),
        (0 <= cfg.lookahead_every <= 10_000, "lookahead_every must be between 0 (off) and 10000 steps"),
        (0 <= cfg.crop_padding <= 16, "crop_padding must be between 0 and 16 pixels"),
        (0 <= cfg.cutout <= 32, "cutout must be between 0 and 32 pixels"),
        (0 <= cfg.seed <= MAX_SEED, f"seed must be between 0 and {MAX_SEED}"),
        (0 <= cfg.split_seed <= MAX_SEED, f"split_seed must be between 0 and {MAX_SEED}"),
        (1 <= cfg.log_every <= 100_000, "log_every must be between 1 and 100000 steps"),
        (0.0 <= cfg.checkpoint_every <= 86_400, "checkpoint_every must be between 0 (epoch ends only) and 86400 seconds"),
    ]
    for ok, sentence in checks:
        if not ok:
            yield f"{sentence}."
    needs_val = cfg.schedule == "plateau" or cfg.early_stopping > 0
    if needs_val and cfg.val_fraction == 0.0 and cfg.folds == 0:
        yield "The plateau schedule and early_stopping watch the validation loss, so val_fraction must be above 0."
    if not is_device_name(cfg.device):
        yield f"device must be {DEVICE_NAME_RULE}, got {cfg.device!r}."
