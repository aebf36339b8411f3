"""Streamlit pages over core: thin views, no training or metric maths here."""
