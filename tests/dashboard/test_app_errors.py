"""The Errors page driven by AppTest against real tiny runs: what it shows equals the saved predictions.

The fixture run trains on a small image folder with CIFAR-10 class names in which "airplane"/"bird" and
"cat"/"dog" are drawn from the same synthetic shape, so those pairs are confused for sure and the
look-alike buttons have pictures to show.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from core.analysis import mistakes
from core.data import load_dataset
from core.rundir import lifecycle, predictions
from tests.helpers import RunPage, train_tiny_run

# CIFAR-10 name -> synthetic class drawn for it; look-alike pairs share a shape so they are confused.
LOOKALIKES = {"airplane": 0, "bird": 0, "cat": 3, "dog": 3, "automobile": 5, "truck": 6}
PER_CLASS = {"train": 40, "test": 15}  # 15 test pictures a class: any cell fits on one page of tiles


def make_lookalike_folder(root: Path) -> Path:
    synthetic = load_dataset("synthetic")
    for split, image_set in (("train", synthetic.train), ("test", synthetic.test)):
        split_images, labels = image_set.images, image_set.labels
        for k, (name, source_class) in enumerate(LOOKALIKES.items()):
            folder = root / split / name
            folder.mkdir(parents=True)
            # airplane and bird take different pictures of the same shape (even / odd positions).
            picks = np.flatnonzero(labels == source_class)[k % 2::2][: PER_CLASS[split]]
            for i in picks:
                Image.fromarray(split_images[i]).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def fixture_runs(tmp_path_factory):
    """runs/ with: a trained look-alike run (2 epochs), a copy whose data is gone, a running and a failed run."""
    root = tmp_path_factory.mktemp("errors")
    runs_dir = root / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIFAR_RUNS_DIR", str(runs_dir))
        mp.setenv("CIFAR_CACHE_DIR", str(root / "cache"))
        data = make_lookalike_folder(root / "lookalike")
        trained = train_tiny_run(runs_dir, name="look-alikes", data=str(data), epochs=2).run_dir
        moved = runs_dir / f"{trained.name}-moved"
        shutil.copytree(trained, moved)
        config = json.loads((moved / "config.json").read_text())
        config["data"] = str(root / "gone")  # as if trained on another machine
        (moved / "config.json").write_text(json.dumps(config))
        running = lifecycle.create_run(runs_dir, config, name="still training", state="running")
        failed = lifecycle.create_run(runs_dir, config, name="broken", state="failed")
        yield {"trained": trained.name, "moved": moved.name, "running": running.name, "failed": failed.name,
               "dir": runs_dir}


class ErrorsPage(RunPage):
    """The Errors page of one AppTest session looking at one run."""

    def __init__(self, run_id: str):
        super().__init__("views/errors.py", run_id)

    def matrix(self, classes: list[str]) -> np.ndarray:
        """The counts drawn in the chart, read back from the chart's own data."""
        chart = self.at.get("vega_lite_chart")[0].proto
        spec = json.loads(chart.spec)
        name = spec["data"]["name"]
        data = next(d for d in chart.datasets if d.name == name)
        frame = pa.ipc.open_stream(data.data.data).read_all().to_pandas()
        counts = np.zeros((len(classes), len(classes)), dtype=int)
        for row in frame.itertuples():
            counts[classes.index(row.true), classes.index(row.pred)] = row.count
        return counts

    def tiles(self) -> list[str]:
        return [image.captions[0] for image in self.at.image]

    def captions(self) -> list[str]:
        return [c.value for c in self.at.caption]


def saved(fixture_runs, run_key: str, split: str = "test", epoch: int | None = None):
    preds = predictions.load_predictions(fixture_runs["dir"] / fixture_runs[run_key], split, epoch)
    return preds, mistakes.confusion_counts(preds.labels, preds.pred, preds.probs.shape[1])


CLASSES = sorted(LOOKALIKES)  # ImageFolder classes are the sorted folder names


# ---------------------------------------------------------------------------------------------
# The matrix and the pairs
# ---------------------------------------------------------------------------------------------

def test_matrix_counts_equal_saved_test_predictions(fixture_runs):
    page = ErrorsPage(fixture_runs["trained"])
    _, counts = saved(fixture_runs, "trained")
    assert np.array_equal(page.matrix(CLASSES), counts)
    right = int(np.trace(counts))
    assert f"{counts.sum():,} pictures, {right:,} right" in " ".join(page.captions())
    assert page.at.toggle(key="errors_normalise").value is False
    page.at.toggle(key="errors_normalise").set_value(True)
    page.run()
    assert np.array_equal(page.matrix(CLASSES), counts)  # the counts stay in the data; only labels change


@pytest.mark.parametrize("pair", [("cat", "dog"), ("airplane", "bird"), ("automobile", "truck")])
def test_lookalike_button_selects_the_worse_cell_and_shows_its_pictures(fixture_runs, pair):
    page = ErrorsPage(fixture_runs["trained"])
    _, counts = saved(fixture_runs, "trained")
    a, b = (CLASSES.index(name) for name in pair)
    true_c, pred_c = mistakes.pair_between(counts, a, b).worse_direction
    page.at.button(key=f"errors_famous_{pair[0]}_{pair[1]}").click()
    page.run()
    assert page.at.session_state["errors_cell"] == (CLASSES[true_c], CLASSES[pred_c])
    n = int(counts[true_c, pred_c])
    assert f"{n} pictures, the most confident prediction first." in page.captions()
    tiles = page.tiles()
    assert len(tiles) == n
    assert all(t.startswith(f"True: {CLASSES[true_c]} · Predicted: {CLASSES[pred_c]} ·") for t in tiles)
    if pair != ("automobile", "truck"):
        assert n > 0  # same shape under two names: the model cannot tell them apart


def test_ranked_pairs_and_direction_buttons(fixture_runs):
    page = ErrorsPage(fixture_runs["trained"])
    preds, counts = saved(fixture_runs, "trained")
    ranked = mistakes.confused_pairs(counts, 8)
    lines = [m.value for m in page.at.markdown if "↔" in m.value]
    assert lines[0] == f"1. **{CLASSES[ranked[0].a]} ↔ {CLASSES[ranked[0].b]}**: {ranked[0].total}"
    assert len(lines) == len(ranked)
    top = ranked[0]
    page.at.button(key=f"errors_pair_{top.b}_{top.a}").click()
    page.run()
    assert len(page.tiles()) == counts[top.b, top.a]
    # Most confident first: the shown percentages never go up.
    sure = [int(t.rsplit("· ", 1)[1].split("%")[0]) for t in page.tiles()]
    assert sure == sorted(sure, reverse=True)
    # Every tile comes with its top-3 probability bars.
    assert len(page.at.get("progress")) == 3 * len(page.tiles())


def popovers(page: ErrorsPage) -> list:
    """The popover blocks on the page (AppTest has no accessor of its own for them)."""
    found, stack = [], [page.at._tree]
    while stack:
        node = stack.pop()
        if getattr(node, "type", None) == "popover":
            found.append(node)
        stack.extend(getattr(node, "children", {}).values())
    return found


def matrix_and_side_columns(page: ErrorsPage) -> tuple:
    """The column holding the matrix and the one beside it (the next column drawn, pairs' columns aside)."""
    columns = list(page.at.columns)
    at = next(k for k, column in enumerate(columns) if column.get("vega_lite_chart"))
    return columns[at], columns[at + 1]


def test_a_chosen_squares_pictures_sit_beside_the_matrix_and_the_pairs_fold_into_a_menu(fixture_runs):
    page = ErrorsPage(fixture_runs["trained"])
    _, counts = saved(fixture_runs, "trained")
    ranked = mistakes.confused_pairs(counts, 8)
    _, side_col = matrix_and_side_columns(page)
    assert not popovers(page)  # nothing chosen yet: the ranked pairs fill the column beside the matrix
    assert "Most mixed-up pairs" in [h.value for h in side_col.subheader]
    page.at.button(key="errors_famous_cat_dog").click()
    page.run()
    (menu,) = popovers(page)
    assert menu.proto.popover.label == "Most mixed-up pairs"
    top = ranked[0]
    assert menu.button(key=f"errors_pair_{top.b}_{top.a}")  # every direction is still one click away
    page.at.button(key=f"errors_pair_{top.b}_{top.a}").click()
    page.run()
    _, side_col = matrix_and_side_columns(page)
    assert [h.value for h in side_col.subheader] == [f"{CLASSES[top.b]} taken for {CLASSES[top.a]}"]
    assert len(side_col.image) == counts[top.b, top.a] == len(page.tiles())
    assert page.at.session_state["errors_pairs_menu"] is False  # the menu closes: it would cover the pictures


def test_selection_survives_refresh_and_the_normalise_toggle(fixture_runs):
    page = ErrorsPage(fixture_runs["trained"])
    _, counts = saved(fixture_runs, "trained")
    page.at.button(key="errors_famous_cat_dog").click()
    page.run()
    chosen, shown = page.at.session_state["errors_cell"], page.tiles()
    page.run()  # what a live refresh does
    page.at.toggle(key="errors_normalise").set_value(True)
    page.run()
    assert page.at.session_state["errors_cell"] == chosen and page.tiles() == shown
    # The chosen square is outlined on the chart as a third layer.
    spec = json.loads(page.at.get("vega_lite_chart")[0].proto.spec)
    assert len(spec["layer"]) == 3


def test_per_class_scores_match_sklearn(fixture_runs):
    from sklearn.metrics import precision_recall_fscore_support

    page = ErrorsPage(fixture_runs["trained"])
    preds, _ = saved(fixture_runs, "trained")
    table = page.at.dataframe[0].value
    p, r, f, s = precision_recall_fscore_support(preds.labels, preds.pred, labels=range(len(CLASSES)),
                                                 zero_division=0)
    assert table["Class"].tolist() == CLASSES
    assert np.allclose(table["Precision"], p) and np.allclose(table["Recall"], r) and np.allclose(table["F1"], f)
    assert table["Images"].tolist() == s.tolist()
    summary = json.loads((fixture_runs["dir"] / fixture_runs["trained"] / "test_summary.json").read_text())
    assert np.allclose(table["Accuracy"], [summary["per_class_accuracy"][c] for c in CLASSES])


# ---------------------------------------------------------------------------------------------
# Validation epochs
# ---------------------------------------------------------------------------------------------

def test_validation_epoch_slider(fixture_runs):
    page = ErrorsPage(fixture_runs["trained"])
    page.at.radio(key="errors_split").set_value("val")
    page.run()
    slider = page.at.select_slider(key="errors_epoch")
    assert list(slider.options) == ["1", "2"] and slider.value == 2
    for epoch in (1, 2):
        page.at.select_slider(key="errors_epoch").set_value(epoch)
        page.run()
        _, counts = saved(fixture_runs, "trained", "val", epoch)
        assert np.array_equal(page.matrix(CLASSES), counts)
    # A look-alike button on the validation view shows that view's pictures (train-split images).
    page.at.button(key="errors_famous_cat_dog").click()
    page.run()
    true_c, pred_c = (CLASSES.index(n) for n in page.at.session_state["errors_cell"])
    assert len(page.tiles()) == counts[true_c, pred_c]


def test_new_epochs_of_a_training_run_appear_and_the_slider_follows_the_newest(fixture_runs):
    source = fixture_runs["dir"] / fixture_runs["trained"]
    growing = fixture_runs["dir"] / f"{source.name}-growing"
    shutil.copytree(source, growing)
    folder = growing / "predictions"
    (folder / "val_epoch_0002.npz").unlink()

    def new_epoch(epoch: int) -> None:  # as the engine does: a new file renamed into predictions/
        shutil.copy(folder / "val_epoch_0001.npz", folder / f"val_epoch_{epoch:04d}.npz")

    page = ErrorsPage(growing.name)
    page.at.radio(key="errors_split").set_value("val")
    page.run()
    assert "Epoch 1: the only epoch finished so far." in page.captions()
    page.at.button(key="errors_famous_cat_dog").click()
    page.run()
    chosen, shown = page.at.session_state["errors_cell"], page.tiles()
    new_epoch(2)
    page.run()  # the refresh after the engine saved epoch 2
    assert page.at.select_slider(key="errors_epoch").value == 2
    page.at.select_slider(key="errors_epoch").set_value(1)
    page.run()
    new_epoch(3)
    page.run()
    assert page.at.select_slider(key="errors_epoch").value == 1  # looking back: stays put
    page.at.select_slider(key="errors_epoch").set_value(3)
    page.run()
    new_epoch(4)
    page.run()
    assert page.at.select_slider(key="errors_epoch").value == 4  # on the newest: follows
    assert page.at.session_state["errors_cell"] == chosen and page.tiles() == shown


def test_rewritten_test_predictions_are_read_again(fixture_runs):
    source = fixture_runs["dir"] / fixture_runs["trained"]
    rerun = fixture_runs["dir"] / f"{source.name}-retested"
    shutil.copytree(source, rerun)
    page = ErrorsPage(rerun.name)
    preds, counts = saved(fixture_runs, "trained")
    assert np.array_equal(page.matrix(CLASSES), counts)
    # As after a resumed run's final test: the file is replaced, the page must not keep the old counts.
    probs = np.roll(preds.probs, 1, axis=1)  # every prediction moves to the next class
    predictions.save_test_predictions(rerun, preds.labels, probs, preds.loss, preds.index)
    page.run()
    assert np.array_equal(page.matrix(CLASSES), mistakes.confusion_counts(preds.labels, probs.argmax(1), len(CLASSES)))


# ---------------------------------------------------------------------------------------------
# Runs without predictions or without their images
# ---------------------------------------------------------------------------------------------

def test_running_run_says_results_are_not_there_yet(fixture_runs):
    lifecycle.update_status(fixture_runs["dir"] / fixture_runs["running"])  # a fresh heartbeat: still alive
    page = ErrorsPage(fixture_runs["running"])
    assert any("still training" in m for m in page.at.info.values)
    assert not page.at.get("vega_lite_chart")
    page.at.radio(key="errors_split").set_value("val")
    page.run()
    assert any("no validation results yet" in m for m in page.at.info.values)


def test_failed_run_says_so(fixture_runs):
    page = ErrorsPage(fixture_runs["failed"])
    assert any("failed before its final test" in m for m in page.at.info.values)


def test_data_not_on_this_machine_still_shows_matrix_and_counts(fixture_runs):
    page = ErrorsPage(fixture_runs["moved"])
    _, counts = saved(fixture_runs, "moved")
    assert any("cannot be loaded on this machine" in w for w in page.at.warning.values)
    assert np.array_equal(page.matrix(CLASSES), counts)
    page.at.button(key="errors_famous_cat_dog").click()
    page.run()
    true_c, pred_c = (CLASSES.index(n) for n in page.at.session_state["errors_cell"])
    assert len(page.at.image) == 0
    assert f"{counts[true_c, pred_c]} pictures, the most confident prediction first." in page.captions()
    tile_captions = [c for c in page.captions() if c.startswith("True: ")]
    assert len(tile_captions) == counts[true_c, pred_c]
