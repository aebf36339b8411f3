"""Data page: what the model learns from — random pictures of every class, and how many pictures
each class has in the training, validation and test sets.

The images come from core.data (through the cached loaders.dataset); the validation split is the
one a run would make (core.data.split_train_val with the run's share and seed); counting and
sampling are core.data.per_class functions.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.data import DataError, Dataset, split_train_val
from core.data.per_class import class_counts, sample_per_class
from core.rundir.config import TrainConfig
from dashboard import charts, loaders, source_picker, state, tiles
from dashboard.text import plain
from dashboard.wording import data_label

IMAGE_SCALE = 3  # 32 px -> 96 px, by pixel repetition so the pictures stay sharp
SPLIT_NAMES = {"class": "Class", "train": "Training", "validation": "Validation", "test": "Test"}  # on screen
MAX_ROWS = 20  # classes shown at once


def _default_source() -> str:
    """The selected run's data, else CIFAR-10 when it loads here, else the synthetic shapes."""
    selected = state.selected_run()
    if selected is not None and selected.data:
        return selected.data
    if "data_fallback" not in st.session_state:
        try:
            loaders.dataset("cifar10")
            st.session_state["data_fallback"] = "cifar10"
        except (DataError, OSError):
            st.session_state["data_fallback"] = "synthetic"
    return st.session_state["data_fallback"]


def _split_settings(source: str) -> tuple[float, int, str]:
    """Validation share and seed: the selected run's when it used this data, else the defaults."""
    selected = state.selected_run()
    if selected is not None and selected.data == source and selected.config:
        config = selected.config
        data_dir = str(config.get("data_dir") or "")
        return float(config.get("val_fraction", 0.0)), int(config.get("split_seed", 0)), data_dir
    defaults = TrainConfig()
    return defaults.val_fraction, defaults.split_seed, defaults.data_dir


@st.cache_data(max_entries=16, show_spinner=False)
def _counts(source: str, data_dir: str, val_fraction: float, split_seed: int) -> pd.DataFrame:
    data = loaders.dataset(source, data_dir)
    train, val = split_train_val(data.train, val_fraction, split_seed)
    return class_counts(data.classes, {"train": train.labels, "validation": val.labels,
                                             "test": data.test.labels})


def _counts_section(counts: pd.DataFrame, val_fraction: float) -> None:
    st.subheader("Pictures per class")
    st.caption(f"{val_fraction:.0%} of the training pictures are held back for validation, as a run with these "
               "settings would do; the test pictures are only used once, at the end of training.")
    shown = counts.rename(columns=SPLIT_NAMES)
    shown["Class"] = charts.chart_labels(list(shown["Class"]))  # the table names classes as the chart does
    names = list(SPLIT_NAMES.values())[1:]
    chart_column, table_column = st.columns([3, 2])
    chart_column.altair_chart(charts.class_counts_chart(shown, names), key="data_counts_chart", width="stretch")
    total = pd.DataFrame([{"Class": "All classes", **shown[names].sum().to_dict()}])
    table_column.dataframe(pd.concat([shown, total], ignore_index=True), key="data_counts", hide_index=True,
                           width="stretch", height="content")


def _grid(data: Dataset) -> None:
    st.subheader("Random pictures of each class")
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    per_class = left.slider("Pictures per class", 4, 16, 8, key="data_per_class",
                            help="How many random training pictures to show for every class.")
    if right.button("Show others", key="data_shuffle", icon=":material/shuffle:",
                    help="Pick a new random set of pictures."):
        st.session_state["data_seed"] = st.session_state.get("data_seed", 0) + 1
    picks = sample_per_class(data.train.labels, per_class, st.session_state.get("data_seed", 0))
    shown = list(picks)
    if len(shown) > MAX_ROWS:  # a folder source may have many classes: let the person pick which
        shown = st.multiselect("Classes to show", shown, default=shown[:MAX_ROWS], key="data_classes",
                               format_func=lambda c: data.classes[c],
                               help="This data has many classes; pick the ones to look at.")
    for cls in shown:
        st.markdown(f"**{plain(data.classes[cls])}**")
        st.image([tiles.enlarge(data.train.images[p], IMAGE_SCALE) for p in picks[cls]])


# ---------------------------------------------------------------------------------------------
# Page
# ---------------------------------------------------------------------------------------------

st.title("Data")
source = source_picker.source_picker("data_source", _default_source)
if not source:
    st.info("Type the path of a folder or archive with your pictures above.")
    st.stop()
val_fraction, split_seed, data_dir = _split_settings(source)
try:
    dataset = loaders.dataset(source, data_dir)
except (DataError, OSError) as exc:
    st.info(plain(exc))
    st.stop()
st.caption(f"{plain(data_label(source))}: {len(dataset.train):,} training and {len(dataset.test):,} test pictures "
           f"in {len(dataset.classes)} classes.")
try:
    counts = _counts(source, data_dir, val_fraction, split_seed)
except DataError as exc:  # too few pictures per class to split: core's sentence says what to do
    st.info(str(exc))
else:
    _counts_section(counts, val_fraction)
_grid(dataset)
