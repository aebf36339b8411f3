"""The dashboard: `streamlit run dashboard/app.py`.

A multipage app. The sidebar's run picker (dashboard/state.py) is shared by every page; the pages
read runs/ through core and start or stop work through the one job manager.
"""
from pathlib import Path

import streamlit as st

from dashboard import state  # importable because the project is installed (`-e .` in requirements.txt)

SIDEBAR_PX = 340

# A sidebar of 340 pixels (Streamlit's is 300) shows a run picker's label in full when its name has the date
# beside it: "fastnet-small · 24 Nov 15:30 · completed" (dashboard/run_listing.py).
st.set_page_config(page_title="CIFAR-10 trainer", page_icon=":material/image:", layout="wide",
                   initial_sidebar_state=SIDEBAR_PX)

# Not named pages/: a folder of that name beside app.py switches Streamlit to its older multipage mode,
# where a bookmarked /errors would run the page alone, without this frame and its run picker.
VIEWS = Path(__file__).resolve().parent / "views"
# Grouped by what a user is doing: training and comparing runs, finding why the model goes wrong, and
# looking at pictures.
navigation = st.navigation({
    "Training": [
        st.Page(VIEWS / "train.py", title="Train", icon=":material/model_training:", default=True),
        st.Page(VIEWS / "runs.py", title="Runs", icon=":material/table_rows:"),
        st.Page(VIEWS / "compare.py", title="Compare", icon=":material/compare_arrows:"),
        st.Page(VIEWS / "sweeps.py", title="Sweeps", icon=":material/tune:"),
    ],
    "Mistakes": [
        st.Page(VIEWS / "errors.py", title="Errors", icon=":material/grid_on:"),
        st.Page(VIEWS / "map.py", title="Map", icon=":material/scatter_plot:"),
        st.Page(VIEWS / "labels.py", title="Possibly mislabelled", icon=":material/label_off:"),
        st.Page(VIEWS / "calibration.py", title="Calibration", icon=":material/speed:"),
        st.Page(VIEWS / "dynamics.py", title="Learning dynamics", icon=":material/timeline:"),
    ],
    "Pictures": [
        st.Page(VIEWS / "gallery.py", title="Gallery", icon=":material/collections:"),
        st.Page(VIEWS / "data.py", title="Data", icon=":material/photo_library:"),
    ],
})
state.sidebar()
navigation.run()
