"""TrainConfig validates itself: every bad value gets one sentence naming the field."""
import dataclasses

import pytest

from core.rundir.config import TrainConfig
from core.training.recipes import AIRBENCH_EXTRAS, PRESETS, preset_config


def test_defaults_are_valid_and_round_trip():
    cfg = TrainConfig()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_config(name):
    assert isinstance(preset_config(name), TrainConfig)


def test_only_best_gpu_turns_the_airbench_extras_on_and_every_preset_states_them():
    """Stated everywhere: choosing a preset on the Train page must switch off what the previous one turned on."""
    defaults = TrainConfig()
    for name, preset in PRESETS.items():
        assert set(AIRBENCH_EXTRAS) <= preset.settings.keys(), name
        on = {f for f in AIRBENCH_EXTRAS if getattr(preset_config(name), f) != getattr(defaults, f)}
        assert on == (set(AIRBENCH_EXTRAS) if name == "best-gpu" else set()), name
    best = preset_config("best-gpu")
    assert (best.lr_start_fraction, best.lr_end_fraction, best.norm_bias_lr_scale, best.whiten_bias_epochs,
            best.lookahead_every) == (0.2, 0.07, 64.0, 3.0, 5)


@pytest.mark.parametrize("field, value, words", [
    ("model", " ", "model must name an architecture"),
    ("epochs", 0, "epochs must be between 1"),
    ("batch_size", -5, "batch_size must be between 1"),
    ("lr", 0.0, "lr must be greater than 0"),
    ("lr", float("nan"), "lr must be a finite number"),
    ("optimizer", "rmsprop", "optimizer must be one of sgd, adam, adamw"),
    ("schedule", "exp", "schedule must be one of"),
    ("flip", "vertical", "flip must be one of none, random, alternating"),
    ("val_fraction", 0.9, "val_fraction must be between 0 and 0.5"),
    ("label_smoothing", 1.0, "label_smoothing must be at least 0 and below 1"),
    ("momentum", 1.0, "momentum must be at least 0 and below 1"),
    ("device", "tpu", "device must be auto, cpu, mps, cuda or cuda:N"),
    ("epochs", "10", "epochs must be a int"),
    ("tta", 1, "tta must be a bool"),
    ("data", "  ", "data must be 'cifar10', 'synthetic', or the path"),
    ("lr_start_fraction", 1.5, "lr_start_fraction must be between 0 and 1"),
    ("lr_end_fraction", -0.1, "lr_end_fraction must be between 0 and 1"),
    ("norm_bias_lr_scale", 0.0, "norm_bias_lr_scale must be greater than 0"),
    ("whiten_bias_epochs", -1.0, "whiten_bias_epochs must be between 0"),
    ("lookahead_every", -1, "lookahead_every must be between 0"),
])
def test_invalid_values_name_the_field(field, value, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        TrainConfig(**{field: value})


def test_combinations_are_checked():
    with pytest.raises(ValueError, match="val_fraction must be above 0"):
        TrainConfig(schedule="plateau", val_fraction=0.0)
    with pytest.raises(ValueError, match="nesterov needs a momentum above 0"):
        TrainConfig(optimizer="sgd", nesterov=True, momentum=0.0)
    with pytest.raises(ValueError, match="warmup_epochs must be between 0 and epochs"):
        TrainConfig(epochs=2, warmup_epochs=3.0)


def test_from_dict_refuses_unknown_fields_and_accepts_whole_floats():
    with pytest.raises(ValueError, match="Unknown config field.*bacth_size"):
        TrainConfig.from_dict({"bacth_size": 64})
    assert TrainConfig.from_dict({"lr": 1}).lr == 1.0


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().epochs = 3


@pytest.mark.parametrize("field", ["lr", "momentum", "label_smoothing"])
def test_a_whole_number_too_large_for_a_float_field_is_one_sentence(field):
    """JSON holds integers of any size: one in a float field of config.json made the run unreadable."""
    from core.rundir.records import FileDamaged, check_config

    with pytest.raises(ValueError, match=f"^{field} must be a finite number, got a whole number too large"):
        TrainConfig.from_dict({field: 10**400})
    with pytest.raises(FileDamaged, match=f"config.json is damaged: {field} must be a finite number"):
        check_config({field: 10**400})
