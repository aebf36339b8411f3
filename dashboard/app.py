"""The dashboard: `streamlit run dashboard/app.py`.

A multipage app. The sidebar's run picker (dashboard/common.py) is shared by every page; the pages
read runs/ through core and start or stop work through the one job manager.
"""
import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `streamlit run` puts only dashboard/ on the path

from dashboard import common  # noqa: E402

st.set_page_config(page_title="CIFAR-10 trainer", page_icon="🖼️", layout="wide")

PAGES = Path(__file__).resolve().parent / "pages"
navigation = st.navigation([
    st.Page(PAGES / "train.py", title="Train", icon="🏋️", default=True),
    st.Page(PAGES / "runs.py", title="Runs", icon="📋"),
    st.Page(PAGES / "data.py", title="Data", icon="🖼️"),
    st.Page(PAGES / "errors.py", title="Errors", icon="🔍"),
    st.Page(PAGES / "gallery.py", title="Gallery", icon="🗂️"),
])
common.sidebar()
navigation.run()
