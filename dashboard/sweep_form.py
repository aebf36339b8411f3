"""The Sweeps page's "New sweep" form: a base recipe, the settings to vary with their ranges or choices, the
number of trials, the sampler and the pruner; core.sweep.create_sweep checks it all and makes the sweep.

Each chosen setting gets a range (from, to, log scale) or a list of choices, filled in from the base
recipe the first time it is chosen (a learning rate from a tenth to ten times the recipe's, on a log
scale). A refused sweep is core's one sentence under the button, and nothing is created.
"""
from __future__ import annotations

import math
from typing import Any

import streamlit as st

from core.rundir import catalog, files
from core.rundir.config import MAX_LR, TrainConfig
from core.sweep import PRUNERS, SAMPLERS, Param, SweepError, create_sweep, tunable_fields
from core.sweep.study import MAX_TRIALS, longest_name
from core.training.models import list_models
from core.training.recipes import PRESETS
from dashboard import controls, source_picker, state
from dashboard.text import plain

KEEP = "session"  # the form keeps its values through a visit to another page (persist_state)
SOURCE_KEY = "sweep_data"  # the data-source picker's keys: sweep_data_kind, sweep_data_path
ERROR_KEY = "sweep_form_error"
CREATED_KEY = "sweep_created"  # the id of the sweep just made: the page picks it
DEFAULT_PRESET = "quick-demo"
DEFAULT_VARY = ["lr"]
DEFAULT_TRIALS = 20
SAMPLER_WORDS = {"tpe": "Learn from earlier trials", "random": "At random"}
PRUNER_WORDS = {"median": "When below the median", "hyperband": "Hyperband", "none": "Never"}
# The same, short, for the sweep's description on the page
SAMPLER_SHORT = {"tpe": "values picked by learning from earlier trials (TPE)", "random": "values picked at random"}
PRUNER_SHORT = {"median": "lagging trials stopped early (median)",
                "hyperband": "lagging trials stopped early (Hyperband)", "none": "every trial trains all its epochs"}

# Ranges for settings where "a tenth to ten times the recipe's value" would be wrong or refused:
# shares below 1, small counts of pixels or epochs. (low, high, log scale)
FIXED_RANGES: dict[str, tuple[float, float, bool]] = {
    "momentum": (0.8, 0.99, False), "label_smoothing": (0.0, 0.3, False), "lr_start_fraction": (0.05, 0.5, False),
    "lr_end_fraction": (0.0, 0.2, False), "step_gamma": (0.1, 0.5, False), "plateau_factor": (0.1, 0.5, False),
    "ema": (0.0, 0.999, False), "norm_bias_lr_scale": (1.0, 64.0, True), "crop_padding": (0, 4, False),
    "cutout": (0, 16, False), "early_stopping": (0, 5, False), "plateau_patience": (1, 5, False),
    "lookahead_every": (0, 10, False), "seed": (0, 1000, False),
}


def _key(what: str, field: str = "") -> str:
    return f"sweep_{what}_{field}" if field else f"sweep_{what}"


# ---------------------------------------------------------------------------------------------
# Defaults from the base recipe
# ---------------------------------------------------------------------------------------------

def field_kind(field: str) -> str:
    """'choices' for a setting picked from a list (model, optimiser, on/off ...), else 'int' or 'float'."""
    kind = controls.FIELD_TYPES[field]
    return "choices" if field == "model" or field in controls.FIELD_CHOICES or kind in ("bool", "str") else kind


def choice_options(field: str) -> list[Any]:
    if field == "model":
        return list_models()
    if field in controls.FIELD_CHOICES:
        return controls.FIELD_CHOICES[field]
    return [True, False]


def default_param(field: str, base: TrainConfig) -> Param:
    """A first range or list for `field`, around the base recipe's value."""
    value = getattr(base, field)
    if field_kind(field) == "choices":
        return Param(field, choices=(value,) if field == "model" else tuple(choice_options(field)))
    if field in FIXED_RANGES:
        low, high, log = FIXED_RANGES[field]
    elif field == "epochs":
        low, high, log = max(1, math.ceil(base.warmup_epochs), value // 2), max(2, value * 2), False
    elif field == "batch_size":
        low, high, log = max(1, value // 2), max(2, value * 2), True
    elif field == "step_every":
        low, high, log = 1, max(2, base.epochs), False
    elif field in ("warmup_epochs", "whiten_bias_epochs"):
        low, high, log = 0.0, float(base.epochs), False
    elif value > 0:  # the learning rate, weight decay: a tenth to ten times, on a log scale
        low, high, log = value / 10, min(value * 10, MAX_LR) if field == "lr" else value * 10, True
    else:
        low, high, log = 1e-5, 1e-2, True
    cast = int if controls.FIELD_TYPES[field] == "int" else float
    return Param(field, cast(low), cast(high), log)


def _fill_defaults(base: TrainConfig, fields: list[str], again: bool = False) -> None:
    """Give each chosen setting's widgets their first values (all of them again when `again`)."""
    for field in fields:
        if not again and (_key("low", field) in st.session_state or _key("choices", field) in st.session_state):
            continue
        param = default_param(field, base)
        if param.choices is not None:
            st.session_state[_key("choices", field)] = list(param.choices)
        else:
            st.session_state[_key("low", field)] = param.low
            st.session_state[_key("high", field)] = param.high
            st.session_state[_key("log", field)] = param.log


def _init() -> None:
    if _key("preset") not in st.session_state:
        st.session_state[_key("preset")] = DEFAULT_PRESET
        _apply_preset()
        st.session_state[_key("vary")] = list(DEFAULT_VARY)
        st.session_state[_key("trials")] = DEFAULT_TRIALS


def _apply_preset() -> None:
    """Model and epochs from the chosen recipe, and every chosen setting's range around its values."""
    settings = PRESETS[st.session_state[_key("preset")]].settings
    st.session_state[_key("model")] = settings.get("model", TrainConfig().model)
    st.session_state[_key("epochs")] = settings.get("epochs", TrainConfig().epochs)
    _fill_defaults(_base_or_default(), st.session_state.get(_key("vary"), []), again=True)


# ---------------------------------------------------------------------------------------------
# What the widgets say
# ---------------------------------------------------------------------------------------------

def _settings(data: str) -> dict[str, Any]:
    settings = {**TrainConfig().to_dict(), **PRESETS[st.session_state[_key("preset")]].settings, "data": data,
                "model": st.session_state[_key("model")], "epochs": int(st.session_state[_key("epochs")]),
                "feature_map": False}
    if settings["val_fraction"] == 0.0:
        settings["val_fraction"] = 0.1
    return settings


def base_config() -> TrainConfig:
    """The recipe every trial starts from: the preset, with this form's data, model and epochs.

    Two changes to the recipe: one that keeps no validation pictures (Best accuracy) keeps 10% here, as a
    sweep ranks its trials by them; and no trial makes the test-set map at its end (t-SNE: about as long
    as a short trial on a CPU), which the Map page makes on demand for the runs worth a look.
    Raises ValueError (one sentence) for a bad data source or setting."""
    source = source_picker.picked_source(SOURCE_KEY)
    problem = source_picker.data_source_problem(source)
    if problem:
        raise ValueError(problem)
    return TrainConfig.from_dict(_settings(source_picker.resolve_source(source)))


def _base_or_default() -> TrainConfig:
    """The base recipe for the ranges' first values: only its numbers matter, so any data will do."""
    try:
        return TrainConfig.from_dict(_settings("synthetic"))
    except ValueError:  # e.g. epochs below the recipe's warm-up: the preset's own numbers then
        return TrainConfig.from_dict({**PRESETS[st.session_state[_key("preset")]].settings, "data": "synthetic"})


def chosen_space() -> list[Param]:
    """The varied settings as the widgets have them."""
    space = []
    for field in st.session_state.get(_key("vary"), []):
        if field_kind(field) == "choices":
            space.append(Param(field, choices=tuple(st.session_state.get(_key("choices", field), []))))
        else:
            space.append(Param(field, st.session_state[_key("low", field)], st.session_state[_key("high", field)],
                               bool(st.session_state.get(_key("log", field)))))
    return space


def _create() -> None:
    """Check and make the sweep (a button callback); a refusal is one sentence and creates nothing."""
    space, trials = chosen_space(), int(st.session_state[_key("trials")])
    name = st.session_state.get(_key("name"), "").strip() or _default_name(space, trials)
    try:
        base = base_config()
        sweep = create_sweep(state.runs_dir(), name, base, space, trials, st.session_state[_key("sampler")],
                             st.session_state[_key("pruner")])
    except (SweepError, ValueError) as exc:
        st.session_state[ERROR_KEY] = str(exc)
        return
    except OSError as exc:
        st.session_state[ERROR_KEY] = files.action_error_sentence(exc, "Creating the sweep")
        return
    st.session_state[CREATED_KEY] = sweep.sweep_id


def _default_name(space: list[Param], trials: int) -> str:
    """The varied settings' names, cut so that every trial's run name "<sweep name> #<trial>" fits."""
    return ", ".join(controls.label(p.field) for p in space)[: longest_name(trials)].strip(" ,") or "Sweep"


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------

def _base_widgets() -> None:
    st.markdown("**Start from**")
    st.selectbox("Recipe", list(PRESETS), format_func=lambda k: PRESETS[k].title, key=_key("preset"),
                 on_change=_apply_preset, persist_state=KEEP,
                 help="The settings every trial starts from; the settings you vary replace the recipe's values.")
    source_picker.source_picker(SOURCE_KEY, TrainConfig().data, persist_state=KEEP)
    st.selectbox(controls.MODEL.label, list_models(), key=_key("model"), persist_state=KEEP, help=controls.MODEL.help)
    st.number_input("Epochs per trial", min_value=1, max_value=10_000, step=1, key=_key("epochs"),
                    persist_state=KEEP,
                    help="How many epochs each trial trains, unless pruned earlier. Short trials find good settings "
                         "sooner; train the winner longer afterwards on the Train page.")
    st.caption("Trials are ranked by their validation pictures (10% of the training pictures where the recipe "
               "keeps none) and skip the test-set map, which the Map page makes on demand.")


def _range_widgets(field: str) -> None:
    control = controls.BY_FIELD.get(field)
    whole = controls.FIELD_TYPES[field] == "int"
    step = 1 if whole else (control.step if control and control.step else 0.01)
    st.markdown(controls.label(field), help=control.help if control else None)
    low, high, log = st.columns(3, vertical_alignment="bottom")
    number = dict(step=step) if whole else dict(step=float(step), format="%g")
    low.number_input("From", key=_key("low", field), persist_state=KEEP, **number)
    high.number_input("To", key=_key("high", field), persist_state=KEEP, **number)
    log.checkbox("Log scale", key=_key("log", field), persist_state=KEEP,
                 help="Try values spread evenly over orders of magnitude (0.001, 0.01, 0.1 ...) rather than evenly "
                      "between the two ends: right for learning rates and weight decay.")


def _choice_widgets(field: str) -> None:
    control = controls.BY_FIELD.get(field)
    st.multiselect(controls.label(field), choice_options(field), key=_key("choices", field), persist_state=KEEP,
                   format_func=lambda v: controls.choice_words(field, v), help=control.help if control else None)


def _vary_widgets() -> None:
    st.markdown("**What to vary**")
    st.multiselect("Settings to vary", tunable_fields(), key=_key("vary"), format_func=controls.label,
                   persist_state=KEEP,
                   help="Each trial picks a value for each of these; everything else stays as in the recipe. Where "
                        "the pictures come from and which are held back for validation stay fixed, so trials compare.")
    chosen = st.session_state.get(_key("vary"), [])
    _fill_defaults(_base_or_default(), chosen)
    for field in chosen:
        if field_kind(field) == "choices":
            _choice_widgets(field)
        else:
            _range_widgets(field)
    if not chosen:
        st.caption("Pick at least one setting.")


def _run_widgets() -> None:
    name, trials, sampler, pruner = st.columns([2, 1, 2, 2])
    name.text_input("Sweep name (optional)", key=_key("name"), max_chars=catalog.MAX_NAME_LENGTH, persist_state=KEEP,
                    help="Its trials are named '<sweep name> #<trial>', which must fit in "
                         f"{catalog.MAX_NAME_LENGTH} characters; empty names it after what it varies.")
    trials.number_input("Trials", min_value=1, max_value=MAX_TRIALS, step=1, key=_key("trials"), persist_state=KEEP,
                        help="How many runs the sweep trains in all, over every worker.")
    sampler.selectbox("How to pick values", SAMPLERS, format_func=SAMPLER_WORDS.get, key=_key("sampler"),
                      persist_state=KEEP,
                      help="Learning from earlier trials (Optuna's TPE) tries more values near the best trials so "
                           "far, after a few random ones; at random tries values anywhere in the ranges.")
    pruner.selectbox("Stop hopeless trials early", PRUNERS, format_func=PRUNER_WORDS.get, key=_key("pruner"),
                     persist_state=KEEP,
                     help="When below the median: a trial whose validation accuracy after an epoch is below the "
                          "median of the earlier trials at that epoch is stopped (once two have finished). Hyperband "
                          "starts many trials and carries only the best ones on. Stopped trials count as pruned.")


def show() -> None:
    """The form; its Create button makes the sweep and leaves its id in st.session_state[CREATED_KEY]."""
    _init()
    base_column, vary_column = st.columns([2, 3], gap="large")
    with base_column:
        _base_widgets()
    with vary_column:
        _vary_widgets()
    _run_widgets()
    st.button("Create sweep", key=_key("create"), type="primary", on_click=_create, icon=":material/add:",
              help="Check the ranges against the recipe and make the sweep; then start its workers below.")
    error = st.session_state.pop(ERROR_KEY, None)
    if error:
        st.error(plain(error))  # it may repeat a typed path or name
