"""The Map page driven by AppTest against a real tiny run whose engine saved the feature map.

Expected pictures are worked out here from the saved files with plain numpy. AppTest cannot drag on an
Altair chart, so `select_box` sends the selection the browser would send (the chart's widget value),
which runs the page's own on_select callback.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.analysis import features
from core.rundir import layout, predictions
from dashboard import tiles
from tests.helpers import RunPage, app_runs_folder, chart_frame, one_thread, shown, train_tiny_run, wait_for


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """runs/ with a tiny run that has its map ("mapped") and a copy without it, as made before the map ("old")."""
    with one_thread(), app_runs_folder(tmp_path_factory) as folder:
        mapped = train_tiny_run(folder, name="mapped", epochs=1, feature_map=True).run_dir
        old = folder / f"{mapped.name}-old"
        shutil.copytree(mapped, old)
        for path in (layout.features(old, "test"), layout.features(old, "train"), layout.feature_map(old)):
            path.unlink()
        yield folder


def mapped(runs_dir: Path) -> Path:
    return next(p for p in runs_dir.iterdir() if not p.name.endswith("-old"))


def old(runs_dir: Path) -> Path:
    return next(p for p in runs_dir.iterdir() if p.name.endswith("-old"))


class MapPage(RunPage):
    """The Map page of one AppTest session looking at one run."""

    def __init__(self, run: Path):
        super().__init__("views/map.py", run.name)

    def chart(self):
        return next(c for c in self.at.get("vega_lite_chart") if "map_chart" in c.proto.id)

    def chart_data(self):
        return chart_frame(self.chart().proto)

    def captions(self, container: str) -> list[str]:
        return [image.captions[0] for image in self.at.container(container).image]

    def select_box(self, x: list[float], y: list[float]) -> None:
        """What the browser sends when a box is dragged on the map."""
        self.select(self.chart(), {"box": {"x": x, "y": y}, "dot": []})

    def click_dot(self, picture: int) -> None:
        """What the browser sends when a dot is clicked: the point, and the empty box the click started."""
        self.select(self.chart(), {"box": {}, "dot": [{"picture": picture}]})


def saved(run: Path):
    test = predictions.load_predictions(run, "test")
    xy = np.load(layout.feature_map(run))["xy"].astype(np.float32)
    classes = json.loads((run / "meta.json").read_text())["classes"]
    return test, xy, classes


def test_a_dragged_box_shows_exactly_the_pictures_inside_it(runs_dir):
    run = mapped(runs_dir)
    test, xy, classes = saved(run)
    page = MapPage(run)
    frame = page.chart_data()
    np.testing.assert_allclose(frame[["x", "y"]].to_numpy(), xy, rtol=1e-6)  # one dot per test picture
    assert len(frame) == len(test.labels)
    hover = frame["image"].str.startswith("data:image/webp;base64,").to_numpy()
    np.testing.assert_array_equal(hover, test.labels != test.pred)  # hover pictures: the mistakes only
    assert (frame["image"][~hover] == "").all()
    # A box around the first picture, small enough that its pictures fit on one page of tiles.
    x_range, y_range = [float(xy[0, 0] - 1.5), float(xy[0, 0] + 1.5)], [float(xy[0, 1] + 1.5), float(xy[0, 1] - 1.5)]
    page.select_box(x_range, y_range)
    inside = np.flatnonzero((xy[:, 0] >= x_range[0]) & (xy[:, 0] <= x_range[1])
                            & (xy[:, 1] >= y_range[1]) & (xy[:, 1] <= y_range[0]))
    assert 0 < len(inside) <= tiles.TILES_PER_PAGE
    wrong = int((test.labels[inside] != test.pred[inside]).sum())
    assert f"{len(inside)} pictures inside the box, {wrong} of them mistakes." in page.text()
    expected = [shown(tiles.tile_caption(classes[test.labels[p]], classes[test.pred[p]], float(test.probs[p, test.pred[p]])))
                for p in inside]
    assert [shown(c) for c in page.captions("map_picked")] == expected
    # The look-alikes are offered for the pictures in the box.
    assert list(page.at.selectbox(key="map_lookalike").options) == [
        f"Picture {test.index[p]}: {classes[test.labels[p]]}, the model said {classes[test.pred[p]]}" for p in inside]


def test_the_errors_pages_square_is_highlighted_on_the_map(runs_dir):
    run = mapped(runs_dir)
    test, _, classes = saved(run)
    wrong = np.flatnonzero(test.labels != test.pred)
    t, p = int(test.labels[wrong[0]]), int(test.pred[wrong[0]])
    page = MapPage(run)
    page.at.session_state["errors_cell"] = (classes[t], classes[p])  # as a click on the Errors page leaves it
    page.run()
    square = (test.labels == t) & (test.pred == p)
    np.testing.assert_array_equal(page.chart_data()["square"].to_numpy(), square)
    assert any(f"Highlighted: the {int(square.sum())} {classes[t]} pictures the model called {classes[p]}" in line
               for line in page.text())


def test_the_look_alikes_sentence_names_the_nearest_training_pictures(runs_dir):
    run = mapped(runs_dir)
    test, _, classes = saved(run)
    page = MapPage(run)
    first_mistake = int(np.flatnonzero(test.labels != test.pred)[0])  # without a box: the mistakes are offered
    assert page.at.selectbox(key="map_lookalike").value == first_mistake
    with np.load(layout.features(run, "test")) as f:
        query = f["features"][first_mistake].astype(np.float64)
    with np.load(layout.features(run, "train")) as f:
        bank, labels = f["features"].astype(np.float64), f["labels"]
    cosine = bank @ query / (np.linalg.norm(bank, axis=1) * np.linalg.norm(query))
    near = [classes[c] for c in labels[np.argsort(-cosine)[:8]]]
    assert len(page.captions("map_lookalikes")) == 8
    assert [shown(c).split(" · ")[0] for c in page.captions("map_lookalikes")] == near
    top, n = max(set(near), key=near.count), near.count(max(set(near), key=near.count))
    sentence = next(line for line in page.text() if "nearest training pictures are" in line)
    assert f"{n} of its 8 nearest training pictures are {top}" in sentence
    assert sentence.startswith("This " if top == classes[test.labels[first_mistake]] else "Your ")


def test_an_old_run_gets_its_map_from_a_button_with_progress(runs_dir):
    run = old(runs_dir)
    page = MapPage(run)
    assert any("no map yet" in info.value for info in page.at.info)
    assert not page.at.get("vega_lite_chart")
    page.at.button(key="map_compute").click()
    page.run()
    assert page.at.get("progress") or features.has_map(run)  # the job's bar, unless it is already done
    wait_for(lambda: features.has_map(run))
    page.run()
    page.run()  # the progress fragment's last tick reruns the page with the map
    assert len(page.chart_data()) == len(predictions.load_predictions(run, "test").labels)


def test_a_clicked_dot_is_chosen_for_look_alikes_and_the_box_stays(runs_dir):
    run = mapped(runs_dir)
    test, xy, classes = saved(run)
    page = MapPage(run)
    x_range, y_range = [float(xy[0, 0] - 1.5), float(xy[0, 0] + 1.5)], [float(xy[0, 1] + 1.5), float(xy[0, 1] - 1.5)]
    page.select_box(x_range, y_range)
    boxed = next(line for line in page.text() if "pictures inside the box" in line)
    wider = (x_range[0] - 1, x_range[1]), tuple(y_range)
    outside = np.setdiff1d(np.flatnonzero(test.labels == test.pred), features.inside_box(xy, *wider))
    right = int(outside[-1])  # a right answer outside both boxes: offered neither by a box nor as a mistake
    page.click_dot(int(test.index[right]))
    picker = page.at.selectbox(key="map_lookalike")
    assert picker.value == right and next(iter(picker.options)) == (
        f"Picture {test.index[right]}: {classes[test.labels[right]]}, the model said {classes[test.pred[right]]}")
    assert boxed in page.text()  # the click kept the box and its pictures
    caption = shown(tiles.tile_caption(classes[test.labels[right]], classes[test.pred[right]],
                                       float(test.probs[right, test.pred[right]])))
    every = [shown(i.captions[0]) for i in page.at.image if i.captions]
    assert every.count(caption) == [shown(c) for c in page.captions("map_picked")].count(caption) + 1  # enlarged
    assert len(page.captions("map_lookalikes")) == 8
    assert any("nearest training pictures are" in line for line in page.text())
    page.select_box(list(wider[0]), list(wider[1]))  # a new drag: the picker follows the box again
    assert page.at.selectbox(key="map_lookalike").value == features.inside_box(xy, *wider)[0]
