"""The data-source picker of the Train and Data pages: CIFAR-10, synthetic shapes, or a folder or archive."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from core.rundir.config import KEYWORD_SOURCES

SOURCE_KINDS = {  # what the data-source picker offers, in plain words
    "cifar10": "CIFAR-10 photos",
    "synthetic": "Synthetic shapes (tiny, for a quick try)",
    "path": "My own folder or archive",
}


def source_picker(key: str, default: str | Callable[[], str], persist_state: str | None = None) -> str:
    """Where the images come from (CIFAR-10, synthetic shapes or a path); returns the source text.

    `key` prefixes the widget keys (`<key>_kind`, `<key>_path`); `default` (or what it returns, when
    it is a function) is used the first time only; `persist_state` as for st.radio.
    """
    kind_key, path_key = f"{key}_kind", f"{key}_path"
    if kind_key not in st.session_state:
        default = default() if callable(default) else default
        st.session_state[kind_key] = default if default in KEYWORD_SOURCES else "path"
        st.session_state[path_key] = "" if default in KEYWORD_SOURCES else default
    st.radio(
        "Images", list(SOURCE_KINDS), format_func=SOURCE_KINDS.get, key=kind_key, persist_state=persist_state,
        help="CIFAR-10 is the classic set of 60,000 small photos in 10 classes (downloaded once, about "
             "170 MB). Synthetic shapes are made up on the spot and learn in seconds: good for a first "
             "try. Your own images need a folder (or .zip/.tar.gz) with train/ and test/ inside, one "
             "sub-folder per class.")
    if st.session_state[kind_key] == "path":
        st.text_input(
            "Folder or archive", key=path_key, placeholder="/home/me/pictures or /home/me/pictures.zip",
            persist_state=persist_state,
            help="The full path on the computer running this dashboard: a folder (or .zip/.tar.gz archive) "
                 "holding train/<class name>/ and test/<class name>/ folders of pictures.")
    return picked_source(key)


def picked_source(key: str) -> str:
    """The source chosen in `source_picker(key, ...)`, also readable from a button callback."""
    kind = st.session_state.get(f"{key}_kind")
    if kind != "path":
        return kind or ""
    return str(st.session_state.get(f"{key}_path") or "").strip()


def resolve_source(source: str) -> str:
    """The source as saved in a run's settings: keywords as they are, paths made absolute, so the run
    can be rebuilt from its saved settings whatever folder it is started from later."""
    text = source.strip()
    if text.lower() in KEYWORD_SOURCES:
        return text.lower()
    return str(Path(text).expanduser().resolve())


def data_source_problem(source: str) -> str | None:
    """One sentence when `source` cannot possibly load (an empty or missing path); None when it may.

    A cheap check before a run is queued; the full check (layout, images) happens when the data loads.
    """
    text = source.strip()
    if not text:
        return "Type the path of a folder or archive with your images, or choose CIFAR-10 or Synthetic shapes."
    if text.lower() in KEYWORD_SOURCES:
        return None
    if not Path(text).expanduser().exists():
        return f"The folder or archive '{text}' does not exist; check the path, or choose CIFAR-10 or Synthetic shapes."
    return None
