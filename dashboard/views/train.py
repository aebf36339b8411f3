"""Train page: set up and start a training run (left), watch the selected run learn live (right).

The form fills a core.rundir.config.TrainConfig; core validates it (one-sentence ValueError) and the one job
manager queues it. The live view is dashboard/live.py; nothing here trains or computes metrics.
"""
from __future__ import annotations

from dataclasses import fields

import streamlit as st

from core.rundir import catalog, files
from core.rundir.config import TrainConfig
from core.training.device import gpu_count
from core.training.models import describe_model, list_models
from core.training.recipes import PRESETS
from dashboard import live, source_picker, state
from dashboard.controls import ALL_GPUS, FIELD_CHOICES, FIELD_TYPES, MAIN, MODEL, MORE, Control
from dashboard.text import plain
from dashboard.wording import format_count

KEEP = "session"  # widget values survive a visit to another page (persist_state)
ERROR_KEY = "train_error"
SOURCE_KEY = "train_data"  # the data-source picker's keys: train_data_kind, train_data_path
DEFAULT_PRESET = "quick-demo"
DEFAULTS = TrainConfig().to_dict()


# ---------------------------------------------------------------------------------------------
# Values and presets
# ---------------------------------------------------------------------------------------------

def _key(field: str) -> str:
    return f"train_{field}"


def _init_values() -> None:
    """First visit: TrainConfig's defaults with the default recipe on top."""
    if _key("model") not in st.session_state:
        for field, value in {**DEFAULTS, **PRESETS[DEFAULT_PRESET].settings}.items():
            if field != "data":  # the data-source picker keeps its own keys
                st.session_state[_key(field)] = value
        st.session_state["train_preset"] = DEFAULT_PRESET


def _apply_preset() -> None:
    """Fill the controls with the chosen recipe (a callback: runs before the widgets are drawn)."""
    for field, value in PRESETS[st.session_state["train_preset"]].settings.items():
        st.session_state[_key(field)] = value


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------

def _control(c: Control) -> None:
    kind, key = FIELD_TYPES[c.field], _key(c.field)
    options = FIELD_CHOICES.get(c.field) or [v for v in c.choices or [] if v != ALL_GPUS]  # core's list wins
    if c.field == "device" and gpu_count() > 1:
        options.append(ALL_GPUS)
    if options:
        words = c.choices or {}
        st.selectbox(c.label, options, format_func=lambda v: words.get(v, v), key=key, help=c.help,
                     persist_state=KEEP)
    elif kind == "bool":
        st.toggle(c.label, key=key, help=c.help, persist_state=KEEP)
    elif kind == "int":
        st.number_input(c.label, step=1, key=key, help=c.help, persist_state=KEEP)
    elif kind == "float":
        st.number_input(c.label, step=c.step or 0.1, format="%g", key=key, help=c.help, persist_state=KEEP)
    else:
        st.text_input(c.label, key=key, help=c.help, persist_state=KEEP)


def _model_picker() -> None:
    st.selectbox(MODEL.label, list_models(), key=_key("model"), persist_state=KEEP, help=MODEL.help)
    info = describe_model(st.session_state[_key("model")])
    st.caption(f"{info['description']} · {format_count(info['parameters'])} parameters")


def _new_run_form() -> None:
    st.subheader("Start a new run")
    st.radio("Recipe", list(PRESETS), format_func=lambda k: PRESETS[k].title, key="train_preset",
             on_change=_apply_preset, horizontal=True, persist_state=KEEP,
             help="Ready-made settings. Choosing one fills in everything below; you can still change any of it.")
    st.caption(PRESETS[st.session_state["train_preset"]].description)
    source_picker.source_picker(SOURCE_KEY, TrainConfig().data, persist_state=KEEP)
    _model_picker()
    st.text_input("Run name (optional)", key="train_name", max_chars=catalog.MAX_NAME_LENGTH, persist_state=KEEP,
                  help="A name to find this run by later; the model name is used when empty.")
    for control in MAIN:
        _control(control)
    with st.expander("More settings"):
        for control in MORE:
            _control(control)
    st.button("Start training", key="train_start", type="primary", on_click=_start, icon=":material/rocket_launch:",
              help="Check the settings and start. If another run is training, this one waits its turn.")
    error = st.session_state.pop(ERROR_KEY, None)
    if error:
        st.error(plain(error))  # it may repeat a typed path or name


def _start() -> None:
    """Validate, then queue the run and point the run picker at it; a bad setting starts nothing."""
    settings = {f.name: st.session_state.get(_key(f.name), DEFAULTS[f.name]) for f in fields(TrainConfig)}
    settings["data"] = source_picker.picked_source(SOURCE_KEY)
    processes = 1
    if settings["device"] == ALL_GPUS:
        settings["device"], processes = "cuda", gpu_count()
    name = st.session_state.get("train_name", "").strip()
    try:
        problem = source_picker.data_source_problem(settings["data"])
        if problem:
            raise ValueError(problem)
        settings["data"] = source_picker.resolve_source(settings["data"])
        config = TrainConfig.from_dict(settings)
        if name:
            catalog.clean_name(name)
        run_id = state.job_manager().submit(config, name=name or None, processes=processes)
    except ValueError as exc:  # TrainConfig, device and name problems all come as one sentence
        st.session_state[ERROR_KEY] = str(exc)
        return
    except OSError as exc:  # the runs folder cannot take a new run: read-only, full, no permission
        st.session_state[ERROR_KEY] = files.action_error_sentence(exc, "Starting the run")
        return
    state.select_run(run_id)


# ---------------------------------------------------------------------------------------------
# Page
# ---------------------------------------------------------------------------------------------

st.title("Train")
_init_values()
form_column, live_column = st.columns([2, 3], gap="large")
with form_column:
    _new_run_form()
with live_column:
    selected = state.selected_run()
    if selected is None:
        st.info("No run to show yet: choose your settings on the left and press Start training.")
    else:
        live.show(selected)
