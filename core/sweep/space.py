"""A sweep's search space: which TrainConfig fields vary and over what, checked before anything is made.

A `Param` is a range (`lr=0.001:0.5:log`, `batch_size=128:512`) or a list of choices
(`optimizer=sgd,adamw`, `nesterov=true,false`). `check_space` refuses a bad space in one sentence: an
unknown field, one a sweep may not vary, an empty or reversed range, a whole number too large to be
stored exactly, or any value (alone or at a corner of the space) that TrainConfig itself would refuse.
`Param.from_dict` reads one entry of sweep.json's space, refusing a wrongly typed field in one sentence.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any

import optuna

from core.rundir import records
from core.rundir.config import TrainConfig
from core.training.models import check_model_name

# Where and on what a trial trains, and how it is recorded, are the sweep's frame, not its question;
# val_fraction and the folds change the validation set that ranks the trials.
FIXED_FIELDS = frozenset({"data", "data_dir", "device", "val_fraction", "split_seed", "folds", "fold",
                          "log_every", "checkpoint_every", "feature_map"})
MAX_CORNERS = 4096  # corners of the space checked together; beyond this each value is checked alone
MAX_CHOICES = 1000  # choices of one setting: each is checked on every read of sweep.json; a range takes more
# Optuna keeps every parameter as a float: a whole number beyond 2**53 would come back rounded (and the
# page's table holds 64-bit integers), so an integer range stays within this, whatever TrainConfig allows.
MAX_WHOLE = records.MAX_COUNT
CHOICE_TYPES = (bool, int, float, str)  # what Optuna's categorical distribution takes (None aside)
_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(TrainConfig)}


class SweepError(ValueError):
    """A sweep that cannot be made or used; the message says why in one sentence."""


@dataclass(frozen=True)
class Param:
    """One varied setting: a range `low..high` (log-spaced when `log`) or a tuple of `choices`."""
    field: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"field": self.field, "choices": list(self.choices)}
        return {"field": self.field, "low": self.low, "high": self.high, "log": self.log}

    @classmethod
    def from_dict(cls, data: Any) -> Param:
        """One entry of sweep.json's space; SweepError (one sentence) when a key is missing or of the wrong type."""
        if not isinstance(data, dict) or not isinstance(data.get("field"), str):
            raise SweepError(f"each setting of the space should be an object naming its field, got {quote(data)}.")
        field = data["field"]
        if "choices" in data:
            choices = data["choices"]
            if not isinstance(choices, list) or not all(isinstance(c, CHOICE_TYPES) for c in choices):
                raise SweepError(f"{field}'s choices should be a list of numbers, text or true/false, "
                                 f"got {quote(choices)}.")
            return cls(field, choices=tuple(choices))
        if not isinstance(data.get("log", False), bool):
            raise SweepError(f"{field}'s log should be true or false, got {quote(data['log'])}.")
        return cls(field, data.get("low"), data.get("high"), data.get("log", False))

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.field, list(self.choices))
        if _FIELD_TYPES[self.field] == "int":
            return trial.suggest_int(self.field, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.field, float(self.low), float(self.high), log=self.log)

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.field} in {{{', '.join(map(str, self.choices))}}}"
        return f"{self.field} from {self.low} to {self.high}{' (log scale)' if self.log else ''}"


def tunable_fields() -> list[str]:
    """The TrainConfig fields a sweep may vary, in the config's own order."""
    return [name for name in _FIELD_TYPES if name not in FIXED_FIELDS]


def parse_param(text: str) -> Param:
    """`field=low:high[:log]` or `field=a,b,c`, as typed on the command line."""
    field, sep, values = text.partition("=")
    field = field.strip().replace("-", "_")
    if not sep or not values.strip():
        raise SweepError(f"Cannot read {text!r}: write field=low:high, field=low:high:log or field=a,b,c.")
    _check_field(field)
    if ":" in values and "," not in values:
        parts = values.split(":")
        log = len(parts) == 3 and parts[2].strip() == "log"
        if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
            raise SweepError(f"Cannot read {text!r}: a range is low:high or low:high:log.")
        return Param(field, _typed(field, parts[0]), _typed(field, parts[1]), log)
    return Param(field, choices=tuple(_typed(field, v) for v in values.split(",")))


def _typed(field: str, text: str) -> Any:
    kind, text = _FIELD_TYPES[field], text.strip()
    try:
        if kind == "bool":
            return {"true": True, "false": False}[text.lower()]
        return {"int": int, "float": float, "str": str}[kind](text)
    except (KeyError, ValueError):
        allowed = "true or false" if kind == "bool" else "a whole number" if kind == "int" else "a number"
        raise SweepError(f"{field} takes {allowed}, got {quote(text)}.") from None


def _check_field(field: str) -> None:
    if field not in _FIELD_TYPES:
        raise SweepError(f"Cannot vary {field!r}: it is not a training setting; a sweep can vary "
                         f"{', '.join(tunable_fields())}.")
    if field in FIXED_FIELDS:
        raise SweepError(f"Cannot vary {field}: a sweep keeps the data, device, validation split and "
                         f"bookkeeping fixed; it can vary {', '.join(tunable_fields())}.")


def check_space(base: TrainConfig, space: list[Param], corners: bool = True) -> None:
    """Raise SweepError, one sentence, unless every value of `space` makes a valid config from `base`.

    `corners=False` checks each value alone, not the corners of the space together (up to MAX_CORNERS
    configs): for reading a sweep back, whose corners were checked when it was made; a hand-edited one
    whose corners clash fails only the trials that land there, each with its sentence."""
    if not space:
        raise SweepError("A sweep needs at least one setting to vary.")
    seen = set()
    for param in space:
        _check_field(param.field)
        if param.field in seen:
            raise SweepError(f"{param.field} is varied twice: give each setting one range or one list.")
        seen.add(param.field)
        _check_shape(param)
        for value in _extremes(param):
            _try(base, {param.field: value})
    ends = [[(p.field, v) for v in _extremes(p)] for p in space]
    if corners and math.prod(len(e) for e in ends) <= MAX_CORNERS:
        for corner in itertools.product(*ends):
            _try(base, dict(corner))


def _check_shape(param: Param) -> None:
    kind = _FIELD_TYPES[param.field]
    if param.choices is not None:
        if not param.choices:
            raise SweepError(f"{param.field} needs at least one choice.")
        if len(param.choices) > MAX_CHOICES:
            raise SweepError(f"{param.field} lists {len(param.choices):,} choices; a sweep takes at most "
                             f"{MAX_CHOICES:,}: give a range (low:high) to vary a number over more values.")
        if len(set(param.choices)) != len(param.choices):
            raise SweepError(f"{param.field} lists a choice twice: give each value once.")
        if kind == "int":
            for choice in param.choices:
                _check_bound(param, kind, choice)
        return
    if kind not in ("int", "float"):
        raise SweepError(f"{param.field} is not a number, so it takes a list of choices (a,b,c), not a range.")
    for value in (param.low, param.high):
        _check_bound(param, kind, value)
    if not param.low < param.high:
        raise SweepError(f"{param.field}'s range must go from a lower to a higher value, got {param.low} to "
                         f"{param.high} (to fix it at one value, set it in the base recipe instead).")
    if param.log and param.low <= 0:
        raise SweepError(f"{param.field}'s log-scale range must start above 0, got {param.low}.")


def _check_bound(param: Param, kind: str, value: Any) -> None:
    """One end of a range (or a choice): a finite number; for a whole-number setting an int within ±MAX_WHOLE."""
    if kind == "int":
        if not records._is_int(value):
            raise SweepError(f"{param.field} takes whole numbers, got {quote(value)}.")
        if abs(value) > MAX_WHOLE:
            raise SweepError(f"{param.field} must lie between -{MAX_WHOLE} and {MAX_WHOLE} in a sweep (whole numbers "
                             f"beyond are not stored exactly), got {quote(value)}.")
    elif not records._finite(value):
        raise SweepError(f"{param.field}'s range needs two finite numbers, got {quote(param.low)} and "
                         f"{quote(param.high)}.")


def quote(value: Any) -> str:
    """A value for a message, shortened: a 400-digit number or a long text is not printed whole."""
    return records._short.repr(value)


def _extremes(param: Param) -> list[Any]:
    if param.choices is not None:
        return list(param.choices)
    cast = int if _FIELD_TYPES[param.field] == "int" else float
    return [cast(param.low), cast(param.high)]


def _try(base: TrainConfig, values: dict[str, Any]) -> None:
    try:
        cfg = TrainConfig.from_dict({**base.to_dict(), **values})  # from_dict: a range's 1 is 1.0 for a float field
        check_model_name(cfg.model)  # the settings' checks leave architectures to the training wing
    except ValueError as exc:
        where = ", ".join(f"{k}={v}" for k, v in values.items())
        raise SweepError(f"The sweep would train with {where}, which is not allowed: {exc}") from None
