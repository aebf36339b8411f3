"""The pytest suite, grouped the way the code is: core/ (by wing: rundir, data, training, analysis, sweep; the
conductors' tests at its top), dashboard/ (AppTest page tests and the dashboard's modules) and browser/ (the
real-browser tests). Shared: helpers.py, data_trees.py, conftest.py, and REPO below."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # the checkout: where commands run and README.md, core/, dashboard/ are
