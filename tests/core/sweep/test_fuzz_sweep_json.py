"""Property: whatever value of whatever type lands in any field of a sweep.json, the sweep is either read
whole or refused in one sentence, it is listed either way, and the Sweeps page loads without an exception.

Hypothesis writes random JSON values (and a few planted ones: storage URLs no worker could share or reach,
400-digit numbers, infinities) into the top-level fields of a fresh sweep's sweep.json, into its base
recipe's settings and into its first varied setting, like tests/dashboard/test_fuzz_run_files.py does for run files.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.rundir.config import TrainConfig
from core.sweep import DamagedSweep, Param, Sweep, SweepError, create_sweep, list_sweeps, load_sweep
from core.sweep.study import SPEC_FIELDS
from tests.helpers import app_runs_folder, open_view, shown, tiny_config

SPACE = [Param("lr", 1e-4, 1e-2, log=True), Param("step_every", 1, 5), Param("optimizer", choices=("sgd", "adam"))]
WHERE = [(name,) for name in SPEC_FIELDS] + [("base", f.name) for f in fields(TrainConfig)] + \
    [("space", k, key) for k in range(len(SPACE)) for key in ("field", "low", "high", "log", "choices")]

PLANTED = st.sampled_from([
    "sqlite:///:memory:", "sqlite://", "sqlite:///relative.db", "/etc/passwd", "::garbage::", "sqlite:////no/such.db",
    "postgresql+psycopg://nobody@127.0.0.1:1/none", "oracle://u@h/db", int("4" * 400), -int("4" * 400), 10**20,
    2**53, 2**53 + 1, 1e300, -1e300, math.inf, -math.inf, math.nan, "", "x" * 200, [], {}, 0, -1, 1, 0.5, True,
    "tpe", "random", "median", "none", "lr", "device", "step_every", "val_acc",
])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | PLANTED,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)
damages = st.lists(st.tuples(st.sampled_from(WHERE), json_values), min_size=1, max_size=3)


def write_damage(spec: Path, where: tuple, value) -> None:
    """`value` at `where` in sweep.json (nothing when an earlier change replaced a container on the way)."""
    data = json.loads(spec.read_text())
    try:
        node = data
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = value
    except (KeyError, IndexError, TypeError):
        return
    spec.write_text(json.dumps(data))  # NaN and Infinity as Python writes them


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory):
    with app_runs_folder(tmp_path_factory) as folder:
        yield folder


def check_read(runs_dir: Path, sweep_id: str) -> str | None:
    """Read the sweep as `status` and the page do: a whole Sweep, or one sentence. Returns the sentence."""
    try:
        sweep = load_sweep(runs_dir, sweep_id)
    except SweepError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(f"Sweep {sweep_id} cannot be used: "), str(exc)
        return str(exc)
    assert isinstance(sweep.base, TrainConfig) and 1 <= sweep.trials <= 10_000 and sweep.space
    assert all(isinstance(p, Param) for p in sweep.space)
    return None


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                               HealthCheck.too_slow, HealthCheck.data_too_large])
@given(changes=damages)
def test_a_sweep_json_with_anything_in_any_field_is_read_or_refused_in_one_sentence(runs_folder, changes):
    shutil.rmtree(runs_folder / "sweeps", ignore_errors=True)  # one sweep: the page shows this one
    sweep = create_sweep(runs_folder, "fuzzed", tiny_config(), SPACE, trials=3)
    for where, value in changes:
        write_damage(sweep.path / "sweep.json", where, value)
    sentence = check_read(runs_folder, sweep.sweep_id)
    [listed] = list_sweeps(runs_folder)
    if sentence is None:
        assert isinstance(listed, Sweep) and listed.problem is None
    else:
        assert listed == DamagedSweep(sweep.sweep_id, sweep.path, sentence)
    at = open_view("views/sweeps.py")
    if sentence is not None:  # the page says what is wrong with it
        assert [shown(e.value) for e in at.error] == [sentence], changes
