"""The Train page's live mistakes (AppTest): the newest epoch's validation matrix appears after epoch 1,
names its most mixed-up pair and how it moved, follows epoch 2, and a click on a square shows its pictures.

The fixture is a running run on the synthetic shapes whose epoch files are written with the engine's own
writers (predictions.save_val_labels, predictions.save_val_predictions), with planted mistakes so every number is known:
a real tiny run would confuse whatever it likes. AppTest cannot click an Altair chart, so `click_square`
sends the selection the browser would send (the chart's widget value), which runs the page's own
on_select callback; tests/browser/test_browser_live.py clicks a real chart.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.analysis import mistakes
from core.data import load_dataset
from core.rundir import layout, lifecycle, predictions
from dashboard import live_mistakes, loaders
from tests.helpers import RunPage, app_runs_folder, chart_frame, shown, tiny_config

CLASSES = list(load_dataset("synthetic").classes)
VAL_INDEX = np.arange(0, 2000, 10)  # 200 training pictures held back as the validation set
# Planted mistakes, (true, predicted) -> how many: classes 0 and 1 are the worst pair after epoch 1
# (6 + 3 = 9), classes 2 and 3 after epoch 2 (4, up from 2).
EPOCH_MISTAKES = {1: {(0, 1): 6, (1, 0): 3, (2, 3): 2}, 2: {(0, 1): 2, (1, 0): 1, (2, 3): 4}}


@pytest.fixture
def run_dir(tmp_path_factory):
    """A running run (this process, fresh heartbeat) with its validation labels and no epoch finished yet."""
    with app_runs_folder(tmp_path_factory) as folder:
        path = lifecycle.create_run(folder, tiny_config(epochs=5).to_dict(), name="live mistakes", state="running")
        predictions.save_val_labels(path, val_labels(), VAL_INDEX)
        yield path


def val_labels() -> np.ndarray:
    return load_dataset("synthetic").train.labels[VAL_INDEX]


def finish_epoch(run_dir: Path, epoch: int) -> np.ndarray:
    """Save the epoch's validation probabilities, as the engine does at an epoch's end; returns its counts."""
    probs, counts = planted_probs(epoch)
    predictions.save_val_predictions(run_dir, epoch, probs)
    lifecycle.update_status(run_dir, epoch=epoch)  # a fresh heartbeat: still training
    return counts


def planted_probs(epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Validation probabilities with the epoch's planted mistakes, and their counts."""
    labels = val_labels()
    pred = labels.copy()
    for (t, p), n in EPOCH_MISTAKES[epoch].items():
        where = np.flatnonzero(labels == t)[:n]
        assert len(where) == n
        pred[where] = p
    probs = np.full((len(labels), len(CLASSES)), 0.02, dtype=np.float32)  # (N, C)
    probs[np.arange(len(labels)), pred] = 1 - 0.02 * (len(CLASSES) - 1)
    return probs, mistakes.confusion_counts(labels, pred, len(CLASSES))


class LivePage(RunPage):
    """The Train page of one AppTest session, looking at the fixture run."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        super().__init__(None, run_dir.name)

    def run(self, widget_states=None) -> LivePage:
        lifecycle.update_status(self.run_dir)  # the engine's heartbeat
        return super().run(widget_states)

    def matrix_chart(self):
        charts = [c for c in self.at.get("vega_lite_chart") if c.proto.id and "live_mistakes_matrix" in c.proto.id]
        return charts[0] if charts else None

    def matrix(self) -> np.ndarray:
        """The counts drawn in the live matrix, read back from the chart's own data (its first layer)."""
        proto = self.matrix_chart().proto
        frame = chart_frame(proto)
        counts = np.zeros((len(CLASSES), len(CLASSES)), dtype=int)
        for row in frame.itertuples():
            counts[CLASSES.index(row.true), CLASSES.index(row.pred)] = row.count
        return counts

    def click_square(self, true_name: str, pred_name: str) -> None:
        """What the browser sends when the square (true_name, pred_name) is clicked: the chart's new selection."""
        self.select(self.matrix_chart(), {"cell": [{"true": true_name, "pred": pred_name}]})


def test_the_matrix_appears_after_epoch_one_with_its_worst_pair(run_dir):
    page = LivePage(run_dir)
    assert page.matrix_chart() is None  # no epoch finished: nothing to show yet, and it says so
    assert live_mistakes.WAITING in page.text()
    counts = finish_epoch(run_dir, 1)
    page.run()
    assert np.array_equal(page.matrix(), counts)
    text = page.text()
    assert "Mistakes on the validation pictures after epoch 1" in text
    a, b = CLASSES[0], CLASSES[1]
    assert f"Right now it mixes up {a} and {b} most: 9 times." in text  # no epoch before: no change
    assert f"{a} taken for {b}: 6 · {b} taken for {a}: 3" in text


def test_a_first_look_halfway_through_epoch_one_is_clickable_until_epoch_one_replaces_it(run_dir):
    page = LivePage(run_dir)
    probs, counts = planted_probs(1)
    predictions.save_first_look(run_dir, probs)  # as the engine does halfway through a slow first epoch
    assert live_mistakes.newest_epoch(run_dir) == live_mistakes.FIRST_LOOK
    page.run()
    assert np.array_equal(page.matrix(), counts)
    text = page.text()
    assert "Mistakes on the validation pictures halfway through epoch 1" in text
    assert f"Right now it mixes up {CLASSES[0]} and {CLASSES[1]} most: 9 times." in text
    assert not page.at.get("page_link")  # the Errors page shows whole epochs only
    page.click_square(CLASSES[0], CLASSES[1])
    captions = [shown(image.captions[0]) for image in page.at.image]
    assert len(captions) == 6 and all(c.startswith(f"True: {CLASSES[0]} · Predicted: {CLASSES[1]} ·") for c in captions)

    counts = finish_epoch(run_dir, 1)
    page.run()
    assert "Mistakes on the validation pictures after epoch 1" in page.text()
    assert not any("halfway" in t for t in page.text()) and np.array_equal(page.matrix(), counts)


def test_a_damaged_first_look_is_named_in_one_sentence(run_dir):
    layout.val_first_look(run_dir).write_bytes(b"not an npz")
    page = LivePage(run_dir)
    assert page.matrix_chart() is None
    assert [shown(w.value) for w in page.at.warning] == [
        "predictions/val_first_look.npz is damaged: it cannot be read as saved predictions (ValueError)."]


def test_the_matrix_follows_epoch_two_and_says_how_its_pair_moved(run_dir):
    finish_epoch(run_dir, 1)
    page = LivePage(run_dir)
    counts = finish_epoch(run_dir, 2)
    page.run()
    assert np.array_equal(page.matrix(), counts)
    text = page.text()
    assert "Mistakes on the validation pictures after epoch 2" in text
    assert f"Right now it mixes up {CLASSES[2]} and {CLASSES[3]} most: 4 times, up from 2 after epoch 1." in text


def test_each_epoch_file_is_read_once_however_often_the_view_refreshes(run_dir, monkeypatch):
    reads = []
    load = predictions.load_predictions
    monkeypatch.setattr(loaders, "load_predictions", lambda d, s="test", e=None: reads.append(e) or load(d, s, e))
    finish_epoch(run_dir, 1)
    page = LivePage(run_dir)
    finish_epoch(run_dir, 2)
    for _ in range(3):  # three live refreshes
        page.run()
    assert sorted(reads) == [1, 2]  # epoch 1 on the first draw, epoch 2 once when it appeared


def test_a_click_on_a_square_shows_that_epochs_pictures_and_opens_the_errors_page(run_dir):
    finish_epoch(run_dir, 1)
    page = LivePage(run_dir)
    page.click_square(CLASSES[0], CLASSES[1])
    assert page.at.session_state["live_mistakes_cell"] == (CLASSES[0], CLASSES[1])
    heading = f"{CLASSES[0]} taken for {CLASSES[1]}"
    assert heading in [shown(s.value) for s in page.at.subheader]
    assert "6 pictures, the most confident prediction first." in page.text()
    captions = [shown(image.captions[0]) for image in page.at.image]
    assert len(captions) == 6
    assert all(c.startswith(f"True: {CLASSES[0]} · Predicted: {CLASSES[1]} ·") for c in captions)

    finish_epoch(run_dir, 2)  # the chosen square stays chosen and now shows epoch 2's pictures
    page.run()
    assert len(page.at.image) == EPOCH_MISTAKES[2][(0, 1)]

    # The link names the epoch and the square; arriving by it (AppTest cannot follow a link) opens them.
    [link] = [e.proto for e in page.at.get("page_link")]
    assert link.label == "Open epoch 2 on the Errors page"
    assert link.query_string == f"epoch=2&true={CLASSES[0]}&pred={CLASSES[1]}"
    page.at.query_params.update({"epoch": "2", "true": CLASSES[0], "pred": CLASSES[1]})
    page.at.switch_page("views/errors.py")
    page.run()
    assert page.at.title[0].value == "Errors"
    assert page.at.radio(key="errors_split").value == "val"
    assert page.at.select_slider(key="errors_epoch").value == 2
    assert page.at.session_state["errors_cell"] == (CLASSES[0], CLASSES[1])
    assert len(page.at.image) == EPOCH_MISTAKES[2][(0, 1)]


def test_a_damaged_epoch_file_is_named_in_one_sentence_instead_of_a_matrix(run_dir):
    finish_epoch(run_dir, 1)
    layout.val_epoch(run_dir, 1).write_bytes(b"not an npz")  # e.g. a disk error
    page = LivePage(run_dir)
    assert page.matrix_chart() is None
    assert [shown(w.value) for w in page.at.warning] == [
        "predictions/val_epoch_0001.npz is damaged: it cannot be read as saved predictions (ValueError)."]


@pytest.mark.parametrize("epoch", ["abc", "٣", "99999999999", "7"])
def test_an_errors_address_with_a_wrong_epoch_or_class_shows_the_page_as_usual(run_dir, epoch):
    finish_epoch(run_dir, 1)
    page = LivePage(run_dir)
    page.at.query_params.update({"epoch": epoch, "true": "no such class", "pred": CLASSES[1]})
    page.at.switch_page("views/errors.py")
    page.run()
    assert not page.at.exception and page.at.title[0].value == "Errors"
    # No square chosen (the address named a class the run lacks), and no error shown.
    assert not page.at.error and not [s for s in page.at.subheader if "taken for" in s.value]
