"""Property: whatever the feature-map files hold, the Map page and the report still work.

Hypothesis writes random arrays (any dtype, a plausible or odd shape, extreme values) into the arrays of
predictions/map_test.npz, features_test.npz and features_train.npz of a real mapped run, or damages a
whole file (cut short, a plain .npy, random bytes), then loads the Map page in AppTest and builds the
report. Neither may raise: the page draws the map or says in a sentence why not, and the report is
written (with the map, or with the sentence in its place).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.rundir import layout
from dashboard import report
from tests.helpers import app_runs_folder, fresh_copy, one_thread, open_view, rerun, train_tiny_run

MAP, TEST, TRAIN = (layout.feature_map(Path()).name, layout.features(Path(), "test").name,
                    layout.features(Path(), "train").name)
ROWS = {MAP: 500, TEST: 500, TRAIN: 1800}  # the tiny run's
KEYS = {MAP: ("xy", "labels", "index"), TEST: ("features", "labels", "index"), TRAIN: ("features", "labels", "index")}
ARRAY_FIELDS = [(file, key) for file, keys in KEYS.items() for key in keys]
DTYPES = ["int64", "uint64", "int8", "uint8", "float16", "float32", "float64", "bool", "<U3"]


@st.composite
def arrays(draw, rows: int) -> np.ndarray:
    """A random array of a dtype a foreign or hand-edited file might hold, sized like the file's or not."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.sampled_from([(rows,), (rows, 2), (rows, 1), (rows, 84), (rows, 3), (0,), (0, 84), (7,),
                                  (rows, 2, 2), (rows - 1,)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    kind = draw(st.sampled_from(["classes", "positions", "normal", "huge"]))
    if kind == "classes":
        values = rng.integers(-2, 12, size=shape).astype(np.float64)
    elif kind == "positions":
        values = rng.integers(-1, 2 * rows, size=shape).astype(np.float64)
    else:
        values = rng.normal(0, 1e300 if kind == "huge" else 10, size=shape)  # 1e300: beyond float32
    if draw(st.booleans()) and values.size:
        values.flat[: max(1, values.size // 5)] = draw(st.sampled_from([np.nan, np.inf, -1.0, 2.0**64 - 1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN and overflow cast to whole numbers: garbage wanted
        if dtype == "<U3":
            return np.nan_to_num(values).astype(np.int64).astype("<U3")
        return values.astype(dtype)


def whole_file_damage(file: str):
    return st.tuples(st.just(file), st.sampled_from(["truncate", "npy", "bytes", "empty"]),
                     st.floats(0.0, 0.99))


damages = st.lists(
    st.one_of(*[st.tuples(st.just((file, key)), arrays(ROWS[file])) for file, key in ARRAY_FIELDS],
              *[whole_file_damage(file) for file in KEYS]),
    min_size=1, max_size=4)


def write_array(run_dir: Path, file: str, key: str, value: np.ndarray) -> None:
    path = layout.predictions_dir(run_dir) / file
    try:
        with np.load(path) as saved:
            contents = dict(saved)
    except Exception:  # already damaged whole by an earlier change: start an archive afresh
        contents = {}
    contents[key] = value
    with open(path, "wb") as fh:
        np.savez(fh, **contents)


def damage_file(run_dir: Path, file: str, how: str, fraction: float) -> None:
    path = layout.predictions_dir(run_dir) / file
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: int(len(data) * fraction)])
    elif how == "npy":
        with open(path, "wb") as fh:
            np.save(fh, np.zeros((ROWS[file], 2), np.float32))
    elif how == "bytes":
        path.write_bytes(np.random.default_rng(int(fraction * 1000)).bytes(max(1, int(len(data) * fraction))))
    else:
        path.write_bytes(b"")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A runs folder with one real mapped run to copy and damage."""
    with one_thread(), app_runs_folder(tmp_path_factory) as folder:
        yield folder, train_tiny_run(folder, name="good", epochs=1, feature_map=True).run_dir


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                               HealthCheck.too_slow, HealthCheck.data_too_large])
@given(changes=damages)
def test_the_map_page_and_the_report_never_raise_whatever_the_map_files_hold(world, changes):
    _, good = world
    copy = fresh_copy(good)
    for change in changes:
        if len(change) == 2:
            (file, key), value = change
            write_array(copy, file, key, value)
        else:
            damage_file(copy, *change)
    at = open_view("views/map.py")
    at.session_state["run_id"] = copy.name
    rerun(at)  # no exception
    drawn = any("map_chart" in chart.proto.id for chart in at.get("vega_lite_chart"))
    said = [m.value for m in [*at.warning, *at.info]]
    assert drawn or said, changes  # the map, or a sentence saying why not
    page = report.build_report(copy)
    assert page.startswith("<!DOCTYPE html>") and 'id="chart-matrix"' in page
