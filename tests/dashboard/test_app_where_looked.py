"""'Show where it looked' driven by AppTest: the toggle colours the pictures on the Errors page's chosen square,
the Gallery's grid and uploaded pictures by their Grad-CAM maps, and compares true and predicted classes."""
from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from core.analysis import mistakes, saliency
from core.data import load_dataset
from core.rundir import checkpoints, predictions
from core.training.device import resolve_device
from core.training.inference import Predictor
from dashboard import tiles, where_looked
from tests.helpers import RunPage, app_runs_folder, train_tiny_run


@pytest.fixture(scope="module")
def fixture_runs(tmp_path_factory):
    """runs/ with one trained synthetic run (one epoch of the tutorial CNN)."""
    with app_runs_folder(tmp_path_factory) as runs_dir:
        trained = train_tiny_run(runs_dir, name="looked", epochs=1).run_dir
        yield {"dir": runs_dir, "run": trained, "preds": predictions.load_predictions(trained, "test"),
               "data": load_dataset("synthetic")}


class TilesPage(RunPage):
    """A page of picture tiles (Errors or Gallery) in one AppTest session looking at one run."""

    def __init__(self, run_id: str, page: str):
        super().__init__(page, run_id)

    def tile_urls(self) -> list[str]:
        """The picture behind each prediction tile (its media URL changes when its pixels do)."""
        return [image.proto.imgs[0].url for image in self.at.image if image.captions[0].startswith("True: ")]

    def looked_captions(self) -> list[str]:
        return [image.captions[0] for image in self.at.image if image.captions[0].startswith("Where it looked")]

    def popover_labels(self) -> list[str]:
        found, stack = [], [self.at._tree]
        while stack:
            node = stack.pop()
            if getattr(node, "type", None) == "popover":
                found.append(node.proto.popover.label)
            stack.extend(getattr(node, "children", {}).values())
        return found


def test_errors_page_toggle_colours_the_chosen_squares_pictures(fixture_runs):
    preds, classes = fixture_runs["preds"], list(fixture_runs["data"].classes)
    counts = mistakes.confusion_counts(preds.labels, preds.pred, len(classes))
    np.fill_diagonal(counts, -1)
    t, p = np.unravel_index(counts.argmax(), counts.shape)  # the most common mistake
    assert counts[t, p] > 0  # the fixture run makes mistakes, so the square has pictures
    page = TilesPage(fixture_runs["run"].name, "views/errors.py")
    page.at.session_state["errors_cell"] = (classes[t], classes[p])
    page.run()
    plain_urls = page.tile_urls()
    shown = min(counts[t, p], tiles.TILES_PER_PAGE)
    assert len(plain_urls) == shown and not page.looked_captions()
    page.at.toggle(key="errors_where_looked").set_value(True)
    page.run()
    coloured = page.tile_urls()
    assert len(coloured) == shown and not set(coloured) & set(plain_urls)  # every picture now coloured
    # Each tile has its comparison: where it looked for the true class beside where it looked for its answer.
    assert page.popover_labels().count(where_looked.POPOVER) == shown
    assert page.looked_captions().count(f"Where it looked for {classes[t]}") == shown
    assert page.looked_captions().count(f"Where it looked for {classes[p]}") == shown


def test_gallery_toggle_colours_the_page_with_the_checkpoints_maps(fixture_runs, monkeypatch):
    preds, data = fixture_runs["preds"], fixture_runs["data"]
    page = TilesPage(fixture_runs["run"].name, "views/gallery.py")
    plain_urls = page.tile_urls()
    real_overlay, heats = saliency.overlay, []

    def overlay(image, heat, *args, **kwargs):  # the page's own overlay, noting each map it draws
        heats.append(heat)
        return real_overlay(image, heat, *args, **kwargs)

    monkeypatch.setattr(saliency, "overlay", overlay)
    page.at.toggle(key="gallery_where_looked").set_value(True)
    page.run()
    coloured = page.tile_urls()
    assert len(coloured) == len(plain_urls) == tiles.TILES_PER_PAGE
    assert not set(coloured) & set(plain_urls)  # every picture on the page is now coloured
    assert page.popover_labels().count(where_looked.POPOVER) == tiles.TILES_PER_PAGE
    # The maps drawn are the run's own Grad-CAM maps of the predicted class, one per tile on screen.
    positions = mistakes.gallery_positions(preds.labels, preds.pred, preds.probs)[:tiles.TILES_PER_PAGE]
    # On the page's own device; a batch of another size may take other kernels there (cuDNN): hence atol.
    model = Predictor.from_run(fixture_runs["run"], resolve_device("auto"), "last")
    expected = saliency.predictor_grad_cam(model, data.test.images[preds.index[positions]], preds.pred[positions])
    assert all(any(np.allclose(heat, want, atol=2e-3) for heat in heats) for want in expected)
    assert all(0 <= heat.min() and heat.max() <= 1 for heat in heats)


def test_uploads_show_where_it_looked_for_its_answer_and_second_guess(fixture_runs):
    data = fixture_runs["data"]
    page = TilesPage(fixture_runs["run"].name, "views/gallery.py")
    buffer = io.BytesIO()
    Image.fromarray(data.test.images[0]).save(buffer, "PNG")
    page.at.file_uploader(key="gallery_upload").set_value(("one.png", buffer.getvalue(), "image/png"))
    page.run()
    assert not page.looked_captions()
    page.at.toggle(key="gallery_upload_where_looked").set_value(True)
    page.run()
    model = Predictor.from_run(fixture_runs["run"], torch.device("cpu"), "last")
    first, second = np.argsort(-model.predict(data.test.images[:1])[0])[:2]
    assert page.looked_captions() == [f"Where it looked for {model.classes[first]}",
                                      f"Where it looked for {model.classes[second]}"]


def test_a_run_without_a_saved_model_says_so(fixture_runs):
    copy = fixture_runs["dir"] / f"{fixture_runs['run'].name}-no-model"  # a run made before checkpoints were kept
    shutil.copytree(fixture_runs["run"], copy)
    shutil.rmtree(checkpoints.checkpoint_path(copy, "last").parent)
    page = TilesPage(copy.name, "views/gallery.py")
    page.at.toggle(key="gallery_where_looked").set_value(True)
    page.run()
    assert any("nothing to ask where it looked" in info.value for info in page.at.info)
    assert len(page.tile_urls()) == tiles.TILES_PER_PAGE and not page.looked_captions()
