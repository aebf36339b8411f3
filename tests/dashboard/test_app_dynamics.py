"""The mistakes across epochs (Errors page: play, the chosen square's count per epoch) and the Learning
dynamics page, driven by AppTest against a real tiny run of 3 epochs.

Expected numbers are computed here from the saved epoch files with plain numpy, not through
core.analysis.dynamics. AppTest cannot drag on an Altair chart, so `select_box` sends the selection the browser
would send (the chart's widget value), which runs the page's own on_select callback.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from core.analysis import dynamics, mistakes
from core.rundir import layout, predictions
from dashboard import epochs as epoch_view
from tests.helpers import RunPage, app_runs_folder, chart_frame, train_tiny_run

EPOCHS = [1, 2, 3]


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """runs/ with a tiny trained run of 3 epochs ("three")."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a few seconds on one thread; minutes on two busy cores (see conftest)
    try:
        with app_runs_folder(tmp_path_factory) as folder:
            train_tiny_run(folder, name="three", epochs=len(EPOCHS))
            yield folder
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run(runs_dir) -> Path:
    return next(p for p in runs_dir.iterdir() if "-three-" in p.name)  # ids are <date>-<time>-<name>-<hex>


def copy_run(run: Path, suffix: str) -> Path:
    target = run.parent / f"{run.name}-{suffix}"
    shutil.copytree(run, target)
    return target


def saved(run: Path, epoch: int) -> predictions.Predictions:
    return predictions.load_predictions(run, "val", epoch)


def classes_of(run: Path) -> list[str]:
    return json.loads((run / "meta.json").read_text())["classes"]


class DynamicsPage(RunPage):
    """One AppTest session on one page ("errors.py" or "dynamics.py") looking at one run."""

    def __init__(self, run: Path, page: str):
        super().__init__(f"views/{page}", run.name)

    def chart(self, key_part: str):
        """A clickable chart (only those have an id) whose key contains `key_part`."""
        charts = [c for c in self.at.get("vega_lite_chart") if key_part in c.proto.id]
        return charts[0] if charts else None

    def chart_data(self, key_part: str):
        return chart_frame(self.chart(key_part).proto)

    def chart_with(self, *columns: str):
        """The data of the first chart drawn from a table with these columns, or None."""
        for chart in self.at.get("vega_lite_chart"):
            frame = chart_frame(chart.proto)
            if set(columns) <= set(frame.columns):
                return frame
        return None

    def tiles(self, grid: str = "dynamics_picked") -> list[str]:
        """The captions of one grid of pictures (a keyed container)."""
        return [image.captions[0] for image in self.at.container(grid).image]

    def select_box(self, confidence: list[float], variability: list[float]) -> None:
        """What the browser sends when a box is dragged on the data map: the chart's new selection."""
        self.select(self.chart("dynamics_map"), {"box": {"confidence": confidence, "variability": variability}})


# ---------------------------------------------------------------------------------------------
# The Errors page over the epochs
# ---------------------------------------------------------------------------------------------

def errors_on_validation(run: Path) -> DynamicsPage:
    page = DynamicsPage(run, "errors.py")
    page.at.radio(key="errors_split").set_value("val")
    return page.run()


def matrix_counts(page: DynamicsPage, classes: list[str]) -> np.ndarray:
    frame = page.chart_data("errors_matrix")
    counts = np.zeros((len(classes), len(classes)), dtype=int)
    for row in frame.itertuples():
        counts[classes.index(row.true), classes.index(row.pred)] = row.count
    return counts


def test_play_steps_through_the_epochs_and_stops_at_the_newest(run):
    page = errors_on_validation(run)
    classes = classes_of(run)
    slider = page.at.select_slider(key="errors_epoch")
    assert slider.value == 3 and page.at.button(key="errors_play").label == "Play"
    page.at.button(key="errors_play").click()
    page.run()
    # From the newest epoch, play starts over at the first one.
    assert page.at.select_slider(key="errors_epoch").value == 1
    assert page.at.button(key="errors_play").label == "Pause"
    for epoch in (2, 3):
        time.sleep(epoch_view.STEP_S)  # the fragment's timer ticks once a step is due
        page.run()
        assert page.at.select_slider(key="errors_epoch").value == epoch
        preds = saved(run, epoch)
        assert np.array_equal(matrix_counts(page, classes), mistakes.confusion_counts(preds.labels, preds.pred,
                                                                                       len(classes)))
    assert page.at.button(key="errors_play").label == "Play"  # stopped at the newest epoch
    time.sleep(epoch_view.STEP_S)
    page.run()
    assert page.at.select_slider(key="errors_epoch").value == 3


def test_pause_stops_the_steps(run):
    page = errors_on_validation(run)
    page.at.button(key="errors_play").click()
    page.run()
    page.at.button(key="errors_play").click()  # now labelled Pause
    page.run()
    time.sleep(epoch_view.STEP_S)
    page.run()
    assert page.at.select_slider(key="errors_epoch").value == 1
    assert page.at.button(key="errors_play").label == "Play"


def test_coming_back_to_a_page_left_while_playing_does_not_play_on(run):
    page = errors_on_validation(run)
    page.at.button(key="errors_play").click()
    page.run()
    # As when the page was left mid-play: its timer stopped, the last step is long ago.
    page.at.session_state[epoch_view.LAST_STEP_KEY] = time.monotonic() - 2 * epoch_view.STALE_S
    page.run()
    assert page.at.select_slider(key="errors_epoch").value == 1
    assert page.at.button(key="errors_play").label == "Play"


def test_the_chosen_squares_line_equals_the_counts_in_the_files(run):
    page = errors_on_validation(run)
    classes = classes_of(run)
    assert page.chart_with("epoch", "count", "shown") is None
    assert "Choose a square to see how its count changed from epoch to epoch." in page.text()
    newest = saved(run, 3)
    top = mistakes.confused_pairs(mistakes.confusion_counts(newest.labels, newest.pred, len(classes)), 1)[0]
    t, p = top.worse_direction  # the direction with mistakes after the newest epoch
    page.at.button(key=f"errors_pair_{t}_{p}").click()
    page.run()
    frame = page.chart_with("epoch", "count", "shown")
    expected = [int(((saved(run, e).labels == t) & (saved(run, e).pred == p)).sum()) for e in EPOCHS]
    assert frame["epoch"].tolist() == EPOCHS and frame["count"].tolist() == expected
    assert frame.loc[frame["shown"], "epoch"].tolist() == [3]
    assert f"{classes[t]} taken for {classes[p]}, after every epoch" in page.text()
    page.at.select_slider(key="errors_epoch").set_value(1)
    page.run()
    assert page.chart_with("epoch", "count", "shown").query("shown")["epoch"].tolist() == [1]  # the ring moves


# ---------------------------------------------------------------------------------------------
# The Learning dynamics page
# ---------------------------------------------------------------------------------------------

def by_hand(run: Path, epochs=EPOCHS) -> dict[str, np.ndarray]:
    """Per-picture numbers computed here from the epoch files: true-class probability mean and spread."""
    stack = [saved(run, e) for e in epochs]
    labels = stack[0].labels
    true = np.stack([p.probs[np.arange(len(labels)), labels] for p in stack]).astype(np.float64)  # (E, N)
    right = np.stack([p.pred == labels for p in stack])  # (E, N)
    forgotten = (right[:-1] & ~right[1:]).sum(axis=0)
    return {"confidence": true.mean(0), "variability": true.std(0), "forgotten": forgotten, "newest": stack[-1]}


def expected_tiles(preds: predictions.Predictions, positions: np.ndarray, classes: list[str]) -> list[str]:
    return [f"True: {classes[preds.labels[i]]} · Predicted: {classes[preds.pred[i]]} · "
            f"{preds.probs[i, preds.pred[i]]:.0%} sure" for i in positions[:24]]


def test_data_map_has_a_point_per_picture_and_a_box_shows_the_pictures_inside(run):
    page = DynamicsPage(run, "dynamics.py")
    hand, classes = by_hand(run), classes_of(run)
    points = page.chart_data("dynamics_map")
    assert len(points) == len(hand["confidence"])
    assert np.allclose(points["confidence"], hand["confidence"])
    assert np.allclose(points["variability"], hand["variability"])
    assert "Draw a box on the map, or pick a region, to see its pictures here." in page.at.info.values
    box_c, box_v = [0.3, 0.95], [0.0, 0.3]
    page.select_box(box_c[::-1], box_v)  # a box dragged upwards: the corners come in either order
    c, v = hand["confidence"], hand["variability"]
    inside = np.flatnonzero((c >= 0.3) & (c <= 0.95) & (v <= 0.3))
    inside = inside[np.argsort(c[inside], kind="stable")]  # least confident first
    assert len(inside) > 0
    heading = f"{len(inside)} pictures inside the box (mean confidence 0.30 to 0.95, variability 0.00 to 0.30)"
    assert heading in page.text()
    assert page.tiles() == expected_tiles(hand["newest"], inside, classes)


def test_a_region_shows_its_pictures_and_replaces_the_box(run):
    page = DynamicsPage(run, "dynamics.py")
    hand, classes = by_hand(run), classes_of(run)
    page.select_box([0.0, 1.0], [0.0, 0.5])
    c, v = hand["confidence"], hand["variability"]
    regions = {"easy-to-learn": (v < 0.2) & (c >= 0.5), "ambiguous": v >= 0.2, "hard-to-learn": (v < 0.2) & (c < 0.5)}
    counts = " · ".join(f"{name}: {int(mask.sum())}" for name, mask in regions.items())
    assert counts in page.text()
    for k, (name, mask) in enumerate(regions.items()):
        page.at.pills(key="dynamics_region").set_value(k)
        page.run()
        members = np.flatnonzero(mask)
        members = members[np.argsort(c[members], kind="stable")]
        assert f"{len(members)} {name} pictures" in page.text()
        assert page.tiles() == expected_tiles(hand["newest"], members, classes)
    assert not any("inside the box" in t for t in page.text())


def test_most_forgotten_pictures_come_first(run):
    page = DynamicsPage(run, "dynamics.py")
    hand = by_hand(run)
    forgotten = hand["forgotten"]
    table = page.at.dataframe[0].value
    assert f"{int((forgotten > 0).sum())} pictures were forgotten at least once" in " ".join(page.text())
    expected = np.sort(forgotten[forgotten > 0])[::-1][:24]
    assert table["Times forgotten"].tolist() == expected.tolist()
    assert len(page.tiles("dynamics_forgotten")) == len(expected)


def test_a_run_with_one_epoch_gets_a_sentence_and_no_play_button(run):
    one = copy_run(run, "one-epoch")
    for epoch in (2, 3):
        layout.val_epoch(one, epoch).unlink()
    page = DynamicsPage(one, "dynamics.py")
    assert page.at.info.values == [dynamics.too_few_epochs(1)]
    assert "at least 2 epochs" in page.at.info.values[0] and not page.at.get("vega_lite_chart")
    errors = errors_on_validation(one)
    assert "Epoch 1: the only epoch finished so far." in errors.text()
    assert all(b.key != "errors_play" for b in errors.at.button)


def test_a_damaged_epoch_is_left_out_with_its_reason(run):
    damaged = copy_run(run, "damaged")
    layout.val_epoch(damaged, 2).write_bytes(b"not an archive")
    page = DynamicsPage(damaged, "dynamics.py")
    assert any(w.startswith("Epoch 2 is left out: predictions/val\\_epoch\\_0002.npz is damaged")
               for w in page.at.warning.values)
    assert "Over the 2 epochs saved so far (1 to 3). Pictures are shown with the model's answer after the " \
           "newest epoch." in page.text()
    assert np.allclose(page.chart_data("dynamics_map")["confidence"], by_hand(damaged, [1, 3])["confidence"])


def test_each_epoch_file_is_read_once_as_epochs_appear(run, monkeypatch):
    growing = copy_run(run, "growing")
    last = layout.val_epoch(growing, 3)
    kept = last.read_bytes()
    last.unlink()
    reads = []
    load = predictions.load_predictions
    monkeypatch.setattr(dynamics, "load_predictions", lambda d, s="test", e=None: reads.append(e) or load(d, s, e))
    page = DynamicsPage(growing, "dynamics.py")
    page.run()
    last.write_bytes(kept)  # the run's next epoch
    page.run()
    page.run()
    assert sorted(reads) == EPOCHS
    assert "Over the 3 epochs saved so far (1 to 3)." in " ".join(page.text())
