"""The Gallery page driven by AppTest against a real tiny run: filters, orders, pages, uploads, missing data."""
from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from core.analysis import mistakes
from core.data import load_dataset, uploads
from core.rundir import checkpoints, lifecycle, predictions
from core.training.inference import Predictor
from tests.helpers import RunPage, app_runs_folder, train_tiny_run

PER_PAGE = 24


@pytest.fixture(scope="module")
def fixture_runs(tmp_path_factory):
    """runs/ with a trained synthetic run, a copy whose data is gone, and a queued run with nothing saved."""
    with app_runs_folder(tmp_path_factory) as runs_dir:
        trained = train_tiny_run(runs_dir, name="gallery", epochs=1).run_dir
        moved = runs_dir / f"{trained.name}-moved"
        shutil.copytree(trained, moved)
        config = json.loads((moved / "config.json").read_text())
        config["data"] = str(runs_dir.parent / "gone")
        (moved / "config.json").write_text(json.dumps(config))
        queued = lifecycle.create_run(runs_dir, config, name="waiting")
        preds = predictions.load_predictions(trained, "test")
        yield {"dir": runs_dir, "trained": trained.name, "moved": moved.name, "queued": queued.name,
               "preds": preds, "data": load_dataset("synthetic")}


class GalleryPage(RunPage):
    """The Gallery page of one AppTest session looking at one run."""

    def __init__(self, run_id: str):
        super().__init__("views/gallery.py", run_id)

    def set(self, kind: str, key: str, value) -> GalleryPage:
        getattr(self.at, kind)(key=key).set_value(value)
        return self.run()

    def tiles(self) -> list[str]:
        return [image.captions[0] for image in self.at.image if image.captions[0].startswith("True: ")]

    def matching(self) -> int:
        line = next(c.value for c in self.at.caption if "test pictures match" in c.value)
        return int(line.split(" of ")[0].replace(",", ""))


def names(fixture_runs) -> list[str]:
    return list(fixture_runs["data"].classes)


def encode_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------------------------

def test_first_page_shows_a_page_of_tiles_with_top3_popovers(fixture_runs):
    page = GalleryPage(fixture_runs["trained"])
    preds = fixture_runs["preds"]
    assert page.matching() == len(preds.labels) == 500
    tiles = page.tiles()
    assert len(tiles) == PER_PAGE
    # Default order: the most confident mistakes first, so the first tiles are wrong ones.
    order = mistakes.gallery_positions(preds.labels, preds.pred, preds.probs)
    classes = names(fixture_runs)
    expected = [f"True: {classes[preds.labels[i]]} · Predicted: {classes[preds.pred[i]]} · "
                f"{preds.probs[i, preds.pred[i]]:.0%} sure" for i in order[:PER_PAGE]]
    assert tiles == expected
    assert len(page.at.get("popover")) == PER_PAGE
    assert len(page.at.get("progress")) == 3 * PER_PAGE  # each popover holds the top-3 bars


def test_filters_show_the_right_number_of_tiles(fixture_runs):
    page = GalleryPage(fixture_runs["trained"])
    preds, classes = fixture_runs["preds"], names(fixture_runs)
    wrong = int((preds.labels != preds.pred).sum())
    page.set("radio", "gallery_outcome", "wrong")
    assert page.matching() == wrong and len(page.tiles()) == min(PER_PAGE, wrong)
    assert all(t.split(" · ")[0][6:] != t.split(" · ")[1][11:] for t in page.tiles())
    page.set("radio", "gallery_outcome", "correct")
    assert page.matching() == len(preds.labels) - wrong
    counts = mistakes.confusion_counts(preds.labels, preds.pred, len(classes))
    t, p = np.unravel_index(np.argmax(counts - np.diag(np.diag(counts))), counts.shape)  # the biggest mistake cell
    page.set("radio", "gallery_outcome", "all")
    page.set("selectbox", "gallery_true", classes[t]).set("selectbox", "gallery_pred", classes[p])
    assert page.matching() == counts[t, p] and len(page.tiles()) == min(PER_PAGE, counts[t, p])
    assert all(x.startswith(f"True: {classes[t]} · Predicted: {classes[p]} ·") for x in page.tiles())
    page.set("selectbox", "gallery_pred", "Any")
    assert page.matching() == counts[t].sum()


def test_last_page_and_least_confident_order(fixture_runs):
    page = GalleryPage(fixture_runs["trained"])
    preds = fixture_runs["preds"]
    page.set("selectbox", "gallery_order", "least-confident")
    pages = mistakes.page_count(500, PER_PAGE)
    page.set("number_input", "gallery_page", pages)
    assert len(page.tiles()) == 500 - PER_PAGE * (pages - 1)
    confidences = sorted(mistakes.confidence(preds.probs, preds.pred))
    shown = [int(t.rsplit("· ", 1)[1].split("%")[0]) for t in page.tiles()]
    assert shown == [round(c * 100) for c in confidences[-len(shown):]]
    # A new filter starts again from the first page.
    page.set("radio", "gallery_outcome", "wrong")
    assert page.at.session_state["gallery_page"] == 1
    assert page.at.number_input(key="gallery_page").value == 1


def test_random_order_depends_on_the_seed(fixture_runs):
    page = GalleryPage(fixture_runs["trained"])
    assert page.at.number_input(key="gallery_seed").disabled
    page.set("selectbox", "gallery_order", "random")
    first = page.tiles()
    page.set("number_input", "gallery_seed", 1)
    second = page.tiles()
    page.set("number_input", "gallery_seed", 0)
    assert page.tiles() == first and second != first


# ---------------------------------------------------------------------------------------------
# Uploads: same model, same inference path as the saved predictions
# ---------------------------------------------------------------------------------------------

def test_predictor_reproduces_the_saved_test_predictions(fixture_runs):
    preds, data = fixture_runs["preds"], fixture_runs["data"]
    model = Predictor.from_run(fixture_runs["dir"] / fixture_runs["trained"], torch.device("cpu"), "last")
    probs = model.predict(data.test.images[preds.index[:64]])
    assert np.allclose(probs, preds.probs[:64], atol=1e-4)


def test_uploads_are_predicted_and_bad_files_refused_one_by_one(fixture_runs):
    page = GalleryPage(fixture_runs["trained"])
    preds, data, classes = fixture_runs["preds"], fixture_runs["data"], names(fixture_runs)
    picks = [int(np.flatnonzero(preds.labels != preds.pred)[0]), int(np.flatnonzero(preds.labels == preds.pred)[0])]
    files = [(f"test{i}.png", encode_png(data.test.images[preds.index[i]]), "image/png") for i in picks]
    files.insert(1, ("notes.png", b"this is not a picture", "image/png"))
    files.append(("cut.png", encode_png(data.test.images[0])[:200], "image/png"))
    uploader = page.at.file_uploader(key="gallery_upload")
    assert list(uploader.proto.type) == [f".{ending}" for ending in uploads.EXTENSIONS]  # core's list, not the page's
    uploader.set_value(files)
    page.run()
    errors = page.at.error.values
    assert len(errors) == 2
    assert errors[0].startswith("notes.png is not a PNG or JPEG picture") and errors[1].startswith("cut.png is damaged")
    results = [img.captions[0] for img in page.at.image if img.captions[0].startswith("test")]
    # A lossless 32x32 test picture gets exactly the saved prediction, right or wrong.
    assert results == [f"test{i}.png: {classes[preds.pred[i]]} ({preds.probs[i, preds.pred[i]]:.0%} sure)"
                       for i in picks]
    charts = page.at.get("vega_lite_chart")
    assert len(charts) == 2  # one top-k bar chart per predicted picture


def test_a_newer_checkpoint_is_loaded_again(fixture_runs):
    source = fixture_runs["dir"] / fixture_runs["trained"]
    copy = fixture_runs["dir"] / f"{source.name}-retrained"
    shutil.copytree(source, copy)
    classes, data = names(fixture_runs), fixture_runs["data"]
    upload = ("one.png", encode_png(data.test.images[0]), "image/png")
    page = GalleryPage(copy.name)
    page.at.file_uploader(key="gallery_upload").set_value(upload)
    page.run()
    # Overwrite the checkpoint with weights that always answer the last class, as more training would.
    payload = checkpoints.load_checkpoint(checkpoints.checkpoint_path(copy, "last"))
    last_bias = [k for k in payload["model_state"] if k.endswith("bias")][-1]
    payload["model_state"][last_bias][-1] = 1e4
    checkpoints.save_checkpoint(copy, "last", payload)
    page.at.file_uploader(key="gallery_upload").set_value(upload)
    page.run()
    assert [i.captions[0] for i in page.at.image if i.captions[0].startswith("one.png")] == \
        [f"one.png: {classes[-1]} (100% sure)"]


# ---------------------------------------------------------------------------------------------
# Runs without predictions or without their images
# ---------------------------------------------------------------------------------------------

def test_queued_run_says_so_and_offers_no_upload(fixture_runs):
    page = GalleryPage(fixture_runs["queued"])
    info = page.at.info.values
    assert any("waiting to start" in m for m in info) and any("no saved model yet" in m for m in info)
    assert not page.tiles() and not page.at.file_uploader


def test_data_not_on_this_machine_shows_captions_and_still_predicts(fixture_runs):
    page = GalleryPage(fixture_runs["moved"])
    assert any("cannot be loaded on this machine" in w for w in page.at.warning.values)
    assert not page.tiles()
    captions = [c.value for c in page.at.caption if c.value.startswith("True: ")]
    assert len(captions) == PER_PAGE
    page.at.file_uploader(key="gallery_upload").set_value(
        ("red.png", encode_png(np.full((40, 40, 3), (220, 40, 40), np.uint8)), "image/png"))
    page.run()
    assert [i.captions[0] for i in page.at.image][0].startswith("red.png: ")


def test_a_camera_photo_is_predicted_like_an_upload(fixture_runs):
    page = GalleryPage(fixture_runs["trained"])
    preds, data, classes = fixture_runs["preds"], fixture_runs["data"], names(fixture_runs)
    assert not page.at.camera_input  # the camera stays off until asked for
    page.set("toggle", "gallery_camera_on", True)
    i = int(np.flatnonzero(preds.labels != preds.pred)[0])
    # A browser sends a JPEG; PNG content (the decoder reads the bytes, not the name) keeps the test picture
    # lossless, so the answer must be exactly the saved prediction.
    photo = ("photo.jpg", encode_png(data.test.images[preds.index[i]]), "image/jpeg")
    page.set("camera_input", "gallery_camera", photo)
    results = [img.captions[0] for img in page.at.image if img.captions[0].startswith("Your photo")]
    assert results == [f"Your photo: {classes[preds.pred[i]]} ({preds.probs[i, preds.pred[i]]:.0%} sure)"]
