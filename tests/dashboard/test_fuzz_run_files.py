"""Property: whatever value of whatever type lands in any field of any run file, every page still loads.

Hypothesis writes random JSON values into the fields of status.json, config.json, meta.json,
test_summary.json and metrics records, and random arrays (any dtype, any shape) into the prediction
files of a real run, then loads every page of the dashboard with that run picked. No page may show
an exception: a damaged file is a damaged run (or a skipped record) with its sentence.
"""
from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.rundir import catalog, records
from core.rundir.config import TrainConfig
from tests.helpers import app_runs_folder, fresh_copy, new_session, train_tiny_run

PAGES = ["views/train.py", "views/runs.py", "views/data.py", "views/errors.py", "views/dynamics.py",
         "views/gallery.py", "views/calibration.py", "views/labels.py"]

JSON_FIELDS = [("status.json", name) for name in records.STATUS_FIELDS] + \
    [("config.json", f.name) for f in fields(TrainConfig)] + \
    [("meta.json", name) for name in records.META_FIELDS] + \
    [("test_summary.json", name) for name in [*records.TEST_SUMMARY_FIELDS, "per_class_accuracy"]] + \
    [("metrics.jsonl", name) for name in ["kind", *records.RECORD_FIELDS]]
ARRAY_FIELDS = [("predictions/test.npz", name) for name in ("labels", "pred", "probs", "loss", "index")] + \
    [("predictions/val_labels.npz", name) for name in ("labels", "index")] + \
    [("predictions/val_epoch_0001.npz", "probs")]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


@st.composite
def arrays(draw) -> np.ndarray:
    """A random array: any of the dtypes a hand-edited or foreign file might hold, a plausible or odd shape."""
    dtype = draw(st.sampled_from(["int64", "int8", "float32", "float16", "float64", "bool", "<U3"]))
    shape = draw(st.sampled_from([(0,), (1,), (7,), (50,), (50, 10), (50, 3), (50, 10, 2), (100,)]))
    seed = draw(st.integers(0, 2**16))
    values = np.random.default_rng(seed).normal(0, draw(st.sampled_from([1, 10, 1e6])), size=shape)
    if draw(st.booleans()):
        values.flat[: max(1, values.size // 3)] = draw(st.sampled_from([np.nan, np.inf, -1.0]))
    return values.astype(dtype) if dtype != "<U3" else values.astype(int).astype("<U3")


damages = st.lists(st.one_of(st.tuples(st.sampled_from(JSON_FIELDS), json_values),
                             st.tuples(st.sampled_from(ARRAY_FIELDS), arrays())), min_size=1, max_size=4)


def write_damage(run_dir: Path, where: tuple[str, str], value) -> None:
    file, name = where
    path = run_dir / file
    if file == "metrics.jsonl":
        record = {"kind": "train", "step": 1, "epoch": 0.5, "loss": 1.0, "acc": 0.5, "lr": 0.01, name: value}
        with open(path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
    elif file.endswith(".json"):
        data = json.loads(path.read_text())
        data[name] = value
        path.write_text(json.dumps(data))
    else:
        with np.load(path) as z:
            contents = dict(z)
        contents[name] = value
        with open(path, "wb") as fh:
            np.savez(fh, **contents)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A runs folder with one real run to copy and damage."""
    with app_runs_folder(tmp_path_factory) as folder:
        yield folder, train_tiny_run(folder, name="good", epochs=1).run_dir


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                               HealthCheck.too_slow, HealthCheck.data_too_large])
@given(changes=damages)
def test_no_page_shows_an_exception_whatever_the_run_files_hold(world, changes):
    _, good = world
    copy = fresh_copy(good)
    for where, value in changes:
        write_damage(copy, where, value)
    at = new_session()  # a new session: the picker starts on this run
    if catalog.summarize_run(copy).state != "damaged":  # the picker offers only readable runs
        at.session_state["run_id"] = copy.name
    for page in PAGES:
        if page != PAGES[0]:
            at.switch_page(page)
        at.run()
        assert not at.exception, (page, changes, at.exception)
