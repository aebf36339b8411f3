"""Damaged feature-map files (predictions/map_test.npz, features_test.npz, features_train.npz) and
unreadable labels, as the Map page, the report and its command line show them: one sentence naming the
damaged file, never a traceback.

The fixture is a real tiny run whose engine saved its map (tests.helpers.train_tiny_run); each case
copies it and damages one file the way a crash, a foreign tool or a hand edit would.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.analysis import features
from core.rundir import layout
from dashboard import report
from tests import REPO
from tests.helpers import app_runs_folder, one_thread, open_view, rerun, shown, train_tiny_run

N = 500  # the tiny synthetic run's test pictures (features_test.npz and map_test.npz rows)


def rewrite(name: str, **changes) -> Callable[[Path], None]:
    """Replace some arrays of predictions/<name> (None drops one)."""
    def damage(run: Path) -> None:
        path = run / "predictions" / name
        with np.load(path) as saved:
            arrays = {k: saved[k] for k in saved.files}
        arrays.update(changes)
        with open(path, "wb") as fh:
            np.savez(fh, **{k: v for k, v in arrays.items() if v is not None})
    return damage


def truncate(name: str) -> Callable[[Path], None]:
    """Cut predictions/<name> in half, as a full disk or a killed copy leaves it."""
    def damage(run: Path) -> None:
        path = run / "predictions" / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return damage


def plain_npy(name: str, key: str) -> Callable[[Path], None]:
    """One array saved with np.save under the archive's name (a plain .npy, not an .npz)."""
    def damage(run: Path) -> None:
        path = run / "predictions" / name
        with np.load(path) as saved:
            array = saved[key]
        with open(path, "wb") as fh:
            np.save(fh, array)
    return damage


MAP, TEST, TRAIN = (layout.feature_map(Path()).name, layout.features(Path(), "test").name,
                    layout.features(Path(), "train").name)


def train_rows(run: Path) -> int:
    with np.load(layout.features(run, "train")) as saved:
        return len(saved["labels"])


def rewrite_train(make: Callable[[int], dict]) -> Callable[[Path], None]:
    """Replace arrays of features_train.npz with `make(rows)`'s (its row count is the split's)."""
    return lambda run: rewrite(TRAIN, **make(train_rows(run)))(run)


# name -> (how the files are damaged, a phrase of the sentence shown). The map and the test features are
# what the map is drawn from: damaged, the page says so and offers to compute the map again.
MAP_DAMAGE = {
    "truncated map": (truncate(MAP), "predictions/map_test.npz is damaged: it cannot be read as a saved feature map"),
    "map saved as .npy": (plain_npy(MAP, "xy"), "predictions/map_test.npz is damaged: it holds a single array"),
    "xy with one column": (rewrite(MAP, xy=np.zeros((N, 1), np.float32)), "'xy' should be a table"),
    "xy not finite": (rewrite(MAP, xy=np.full((N, 2), np.nan, np.float32)), "'xy' include numbers that are not finite"),
    "xy beyond float32": (rewrite(MAP, xy=np.full((N, 2), 1e300)), "'xy' include numbers that are not finite"),
    "xy whole numbers": (rewrite(MAP, xy=np.zeros((N, 2), np.int64)), "'xy' are int64 values, not decimal numbers"),
    "map without xy": (rewrite(MAP, xy=None), "it lacks the array 'xy'"),
    "map labels uint64": (rewrite(MAP, labels=np.full(N, 2**64 - 1, np.uint64)),
                          "'labels' include the number 18446744073709551615"),
    "map index short": (rewrite(MAP, index=np.arange(N - 3)), "its 'index' should be 500 numbers"),
    "truncated test features": (truncate(TEST), "predictions/features_test.npz is damaged"),
    "empty test features": (rewrite(TEST, features=np.zeros((0, 84), np.float16), labels=np.zeros(0, np.int64),
                                    index=np.zeros(0, np.int64)), "but their shape is (0, 84)"),
}
# The training features give the look-alikes only: damaged, the map stays and the look-alikes say why.
TRAIN_DAMAGE = {
    "feature-size mismatch": (rewrite_train(lambda n: {"features": np.ones((n, 3), np.float16)}),
                              "holds 3 features a picture, the test pictures 84"),
    "empty training features": (rewrite_train(lambda n: {"features": np.zeros((0, 84), np.float16),
                                                         "labels": np.zeros(0, np.int64),
                                                         "index": np.zeros(0, np.int64)}),
                                "but their shape is (0, 84)"),
    "training labels out of range": (rewrite_train(lambda n: {"labels": np.full(n, 10)}),
                                     "its 'labels' go up to class 10, but the run has 10 classes"),
    "negative training labels": (rewrite_train(lambda n: {"labels": np.full(n, -1)}),
                                 "its 'labels' include the negative number -1"),
    "training index out of range": (rewrite_train(lambda n: {"index": np.full(n, 10**6)}),
                                    "it points to picture 1000000, but there are 2000"),
    "training labels uint64": (rewrite_train(lambda n: {"labels": np.full(n, 2**64 - 1, np.uint64)}),
                               "far beyond any class or picture number"),
}
UINT64_TEST_LABELS = rewrite("test.npz", labels=np.full(N, 2**64 - 1, np.uint64))


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """runs/ with the good mapped run and one damaged copy per case; yields (runs folder, case -> run dir)."""
    with one_thread(), app_runs_folder(tmp_path_factory) as folder:
        good = train_tiny_run(folder, name="good", epochs=1, feature_map=True).run_dir
        dirs = {"good": good}
        cases = {**{k: v[0] for k, v in {**MAP_DAMAGE, **TRAIN_DAMAGE}.items()},
                 "test labels uint64": UINT64_TEST_LABELS}
        for k, (case, damage) in enumerate(cases.items()):
            copy = folder / f"{good.name}-{k}"
            shutil.copytree(good, copy)
            damage(copy)
            dirs[case] = copy
        yield folder, dirs


def map_page(run: Path):
    at = open_view("views/map.py")
    at.session_state["run_id"] = run.name
    return rerun(at)


def sentences(at) -> list[str]:
    return [shown(m.value) for m in [*at.warning, *at.info, *at.error]]


def one_sentence(text: str) -> bool:
    return text.endswith(".") and ". " not in text and "\n" not in text


# ---------------------------------------------------------------------------------------------
# The Map page
# ---------------------------------------------------------------------------------------------

def test_the_good_run_draws_its_map_and_look_alikes(damaged):
    _, dirs = damaged
    at = map_page(dirs["good"])
    assert at.get("vega_lite_chart") and not at.warning
    assert len(at.container(key="map_lookalikes").image) == features.NEIGHBOURS


@pytest.mark.parametrize("case", list(MAP_DAMAGE))
def test_a_damaged_map_file_is_one_sentence_and_an_offer_to_compute_it_again(damaged, case):
    _, dirs = damaged
    at = map_page(dirs[case])
    said = sentences(at)
    assert len(said) == 1 and MAP_DAMAGE[case][1] in said[0] and one_sentence(said[0]), said
    assert not at.get("vega_lite_chart")  # nothing drawn from it
    assert at.button(key="map_compute").label == "Compute the map"


@pytest.mark.parametrize("case", list(TRAIN_DAMAGE))
def test_damaged_training_features_keep_the_map_and_say_why_there_are_no_look_alikes(damaged, case):
    _, dirs = damaged
    at = map_page(dirs[case])
    warnings = [shown(w.value) for w in at.warning]
    assert len(warnings) == 1 and warnings[0].startswith("predictions/features_train.npz "), warnings
    assert TRAIN_DAMAGE[case][1] in warnings[0] and one_sentence(warnings[0]), warnings
    assert at.get("vega_lite_chart")  # the map itself is fine and still drawn
    assert not at.image  # no look-alike, none under a wrong class name


# ---------------------------------------------------------------------------------------------
# The report and its command line
# ---------------------------------------------------------------------------------------------

MAP_FILE_DAMAGE = [case for case in MAP_DAMAGE if "test features" not in case]  # the report reads map_test.npz alone


@pytest.mark.parametrize("case", MAP_FILE_DAMAGE)
def test_the_report_leaves_a_damaged_map_out_with_its_sentence(damaged, case):
    _, dirs = damaged
    page = report.build_report(dirs[case])
    part = page[page.index("<h2>Map of the test set</h2>"):]
    notice = part[part.index('<p class="notice">') + len('<p class="notice">'):part.index("</p>")]
    assert MAP_DAMAGE[case][1].replace("'", "&#x27;") in notice and 'id="chart-map"' not in page
    assert 'id="chart-matrix"' in page  # everything else is still there


def run_report(run: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dashboard.report", str(run), "-o", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("case", ["truncated map", "xy with one column", "map labels uint64"])
def test_the_report_command_on_a_damaged_map_writes_the_report_and_says_what_it_left_out(damaged, tmp_path, case):
    _, dirs = damaged
    done = run_report(dirs[case], tmp_path / "out.html")
    assert done.returncode == 0 and done.stdout.strip() == str(tmp_path / "out.html"), done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Left out of the report: predictions/map_test.npz is damaged"), lines
    assert MAP_DAMAGE[case][1] in lines[0]
    page = (tmp_path / "out.html").read_text(encoding="utf-8")
    assert "Map of the test set" in page and 'id="chart-map"' not in page and 'id="chart-matrix"' in page


def test_the_report_command_on_uint64_test_labels_says_so_in_one_sentence(damaged, tmp_path):
    _, dirs = damaged
    done = run_report(dirs["test labels uint64"], tmp_path / "out.html")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    expected = ("predictions/test.npz is damaged: its 'labels' include the number 18446744073709551615, far beyond "
                "any class or picture number.")
    assert done.stderr == f"Left out of the report: {expected}\n"
    page = (tmp_path / "out.html").read_text(encoding="utf-8")
    assert f'<p class="notice">{expected.replace(chr(39), "&#x27;")}</p>' in page
    assert 'id="chart-matrix"' not in page and 'id="chart-loss"' in page  # settings and curves stay


def test_uint64_test_labels_are_one_sentence_on_the_map_page(damaged):
    _, dirs = damaged
    at = map_page(dirs["test labels uint64"])
    warnings = [shown(w.value) for w in at.warning]
    assert warnings == ["predictions/test.npz is damaged: its 'labels' include the number 18446744073709551615, "
                        "far beyond any class or picture number."]
