"""The Errors page over the epochs (validation set): a play button that steps the epoch slider, and the
chosen square's count after every epoch as a small line chart.

Play starts a fragment that reruns every STEP_S seconds (st.fragment(run_every=...)). Each tick moves
the slider's value (matrix.ERRORS_EPOCH_KEY) one epoch on and reruns the app, so the matrix, the pairs
and the pictures follow; at the newest epoch it stops. Without play nothing ticks. The counts come from
the run's stacked epochs (loaders.epoch_stack), each epoch file read once.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import streamlit as st

from core.analysis import dynamics
from dashboard import charts, loaders, matrix
from dashboard.text import plain

EPOCH_KEY = matrix.ERRORS_EPOCH_KEY
PLAYING_KEY = "errors_playing"
PLAY_BUTTON_KEY = "errors_play"
LAST_STEP_KEY = "errors_play_last_step"  # time.monotonic() of the last step (or of pressing play)
STEP_S = 1.0  # seconds an epoch stays on screen while playing
STALE_S = 10.0  # no tick for this long: the page was left while playing, so coming back does not play on


# ---------------------------------------------------------------------------------------------
# The slider and its play button
# ---------------------------------------------------------------------------------------------

def epoch_slider(epochs: list[int]) -> int:
    """The epoch slider with a play/pause button beside it; returns the epoch chosen."""
    play_col, slider_col = st.columns([1, 7], vertical_alignment="bottom")
    # The button and the ticker run before the slider is made: a tick may still set its value in this run.
    with play_col:
        if st.session_state.get(PLAYING_KEY, False):
            st.button("Pause", key=PLAY_BUTTON_KEY, icon=":material/pause:", on_click=_toggle, args=(epochs,),
                      width="stretch", help="Stop at the epoch shown.")
            st.fragment(_tick, run_every=STEP_S)(epochs)
        else:
            st.button("Play", key=PLAY_BUTTON_KEY, icon=":material/play_arrow:", on_click=_toggle, args=(epochs,),
                      width="stretch", help="Step through the epochs, one a second, up to the newest.")
    with slider_col:
        return st.select_slider("Epoch", options=epochs, key=EPOCH_KEY,
                                help="Show the validation mistakes as they were at the end of this epoch.")


def _toggle(epochs: list[int]) -> None:
    if st.session_state.get(PLAYING_KEY):
        st.session_state[PLAYING_KEY] = False
        return
    if st.session_state.get(EPOCH_KEY) not in epochs[:-1]:
        st.session_state[EPOCH_KEY] = epochs[0]  # from the newest epoch (or none), play starts over
    st.session_state[PLAYING_KEY] = True
    st.session_state[LAST_STEP_KEY] = time.monotonic()


def _tick(epochs: list[int]) -> None:
    """One step of play; also runs in every full rerun, where it steps only when a step is due."""
    since = time.monotonic() - st.session_state.get(LAST_STEP_KEY, 0.0)
    # Half a step: the timer's tick is due, but the rerun that a step (or pressing play) starts is not.
    if since < STEP_S / 2:
        return
    if since > STALE_S:
        st.session_state[PLAYING_KEY] = False
        st.rerun()
    later = [e for e in epochs if e > st.session_state.get(EPOCH_KEY, epochs[-1])]
    if later:
        st.session_state[EPOCH_KEY] = later[0]
        st.session_state[LAST_STEP_KEY] = time.monotonic()
    if len(later) <= 1:
        st.session_state[PLAYING_KEY] = False  # at the newest epoch: stop, and the button says Play again
    st.rerun()  # the whole page: slider, matrix and pictures move to the new epoch


# ---------------------------------------------------------------------------------------------
# The chosen square over the epochs
# ---------------------------------------------------------------------------------------------

def pair_history(run_dir: Path, classes: list[str], chosen: tuple[int, int] | None) -> None:
    """The chosen (true, predicted) square's count after every epoch, the epoch on show marked."""
    stack = loaders.epoch_stack(run_dir)
    if len(stack.epochs) < 2 or stack.probs.shape[2] != len(classes):
        return
    if chosen is None:
        st.caption("Choose a square to see how its count changed from epoch to epoch.")
        return
    t, p = chosen
    frame = pd.DataFrame({"epoch": stack.epochs, "count": dynamics.pair_counts(stack, t, p)})
    frame["shown"] = frame["epoch"] == st.session_state.get(EPOCH_KEY)
    what = (f"{plain(classes[t])} recognised correctly" if t == p
            else f"{plain(classes[t])} taken for {plain(classes[p])}")
    st.markdown(f"**{what}, after every epoch**")
    st.altair_chart(charts.pair_history_chart(frame), key="errors_pair_history", width="stretch")
    st.caption("How many validation pictures were in this square after each epoch; the ring marks the epoch "
               "shown in the matrix.")

