"""Data page (AppTest): the class counts equal the split sizes a run makes, the grid shows enlarged
pictures of every class, and missing CIFAR-10 or data too small to split are explained in core's
sentence instead of failing; class names that were not UTF-8 on disk show on every page."""
from __future__ import annotations

import io
import json
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torchvision
from PIL import Image
from streamlit.testing.v1 import AppTest

import core.data.cache
from core.data import load_dataset, split_train_val
from core.rundir import catalog
from tests.helpers import app_runs_folder, open_view, train_tiny_run

SPLITS = ["Training", "Validation", "Test"]


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    with app_runs_folder(tmp_path_factory) as folder:
        train_tiny_run(folder, name="a fifth held back", epochs=1, val_fraction=0.2, split_seed=3)
        yield folder


@pytest.fixture
def no_cifar_here(tmp_path, monkeypatch):
    """CIFAR-10 not downloaded and no network, whatever this machine has."""
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", no_network)
    monkeypatch.setattr(core.data.cache, "DEFAULT_DATA_DIR", tmp_path / "data")


def open_data_page(run_id: str | None = None, **state) -> AppTest:
    return open_view("views/data.py", run_id, **state)


def counts(at: AppTest):
    frame = at.dataframe[0].value
    return frame[frame["Class"] != "All classes"], frame[frame["Class"] == "All classes"].iloc[0]


def test_counts_follow_the_selected_runs_split(runs_dir):
    (run,) = catalog.list_runs(runs_dir)
    at = open_data_page(run.run_id)
    assert at.radio(key="data_source_kind").value == "synthetic"  # the run's data source
    data = load_dataset("synthetic")
    train, val = split_train_val(data.train, 0.2, 3)
    per_class, total = counts(at)
    assert [total[s] for s in SPLITS] == [len(train), len(val), len(data.test)]
    assert list(per_class["Class"]) == list(data.classes)
    for k, name in enumerate(data.classes):
        shown = per_class[per_class["Class"] == name].iloc[0]
        assert (shown["Training"], shown["Validation"], shown["Test"]) == (
            (train.labels == k).sum(), (val.labels == k).sum(), (data.test.labels == k).sum())


def test_grid_shows_enlarged_pictures_of_every_class(runs_dir):
    (run,) = catalog.list_runs(runs_dir)
    at = open_data_page(run.run_id)
    classes = load_dataset("synthetic").classes
    assert [m.value for m in at.markdown if m.value.startswith("**")] == [f"**{c}**" for c in classes]
    assert [len(row.value) for row in at.image] == [8] * len(classes)
    at.slider(key="data_per_class").set_value(4)
    at.session_state["run_id"] = run.run_id
    at.run()
    assert [len(row.value) for row in at.image] == [4] * len(classes)


def test_no_run_and_no_cifar_falls_back_to_synthetic_with_default_split(tmp_path, monkeypatch, no_cifar_here):
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(tmp_path / "no runs"))
    at = open_data_page()
    assert at.radio(key="data_source_kind").value == "synthetic"
    _, total = counts(at)
    data = load_dataset("synthetic")
    train, val = split_train_val(data.train, 0.1, 0)  # TrainConfig's defaults
    assert [total[s] for s in SPLITS] == [len(train), len(val), len(data.test)]


def test_missing_cifar10_shows_cores_sentence_and_nothing_else(runs_dir, no_cifar_here):
    (run,) = catalog.list_runs(runs_dir)
    at = open_data_page(run.run_id, data_source_kind="cifar10")
    assert len(at.info) == 1 and at.info[0].value.startswith("CIFAR-10 was not found")
    assert not at.image and not at.dataframe and not at.error


def test_a_missing_folder_is_explained_in_one_sentence(runs_dir, tmp_path):
    (run,) = catalog.list_runs(runs_dir)
    at = open_data_page(run.run_id, data_source_kind="path", data_source_path=str(tmp_path / "nowhere"))
    assert len(at.info) == 1 and "does not exist" in at.info[0].value
    assert not at.image


def png(colour: tuple[int, int, int]) -> bytes:
    encoded = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(encoded, "PNG")
    return encoded.getvalue()


def make_folder(root: Path, per_class: int) -> Path:
    for split in ("train", "test"):
        for name, colour in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                (root / split / name / f"{i}.png").write_bytes(png(colour))
    return root


def test_data_too_small_to_split_is_explained_and_its_pictures_still_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(tmp_path / "no runs"))  # no run chosen: the default 10% share
    folder = make_folder(tmp_path / "tiny", per_class=1)
    at = open_data_page(data_source_kind="path", data_source_path=str(folder))
    assert len(at.info) == 1 and at.info[0].value.startswith("The training set (2 pictures in 2 classes")
    assert "too small to hold back a stratified 10% validation set" in at.info[0].value
    assert not at.dataframe  # no counts table for a split that cannot be made
    assert [m.value for m in at.markdown if m.value.startswith("**")] == ["**blue**", "**red**"]

def make_latin1_tar(archive: Path) -> Path:
    """An archive made on a Latin-1 system: the class folder 'café' is stored as the bytes caf\\xe9."""
    rng = np.random.default_rng(0)
    with tarfile.open(archive, "w:gz", format=tarfile.GNU_FORMAT, encoding="latin-1") as tf:
        for split, per_class in (("train", 20), ("test", 5)):
            for name, base in (("café", (200, 60, 20)), ("thé", (20, 160, 40))):
                for i in range(per_class):
                    pixels = np.clip(np.array(base) + rng.integers(-30, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
                    encoded = io.BytesIO()
                    Image.fromarray(pixels).save(encoded, "PNG")
                    info = tarfile.TarInfo(f"{split}/{name}/{i}.png")
                    info.size = len(encoded.getvalue())
                    tf.addfile(info, io.BytesIO(encoded.getvalue()))
    return archive


def test_latin1_class_names_train_and_every_page_shows_them(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(tmp_path / "runs"))
    archive = make_latin1_tar(tmp_path / "latin1.tar.gz")
    result = train_tiny_run(tmp_path / "runs", data=str(archive), epochs=1)
    summary = json.loads((result.run_dir / "test_summary.json").read_text(encoding="utf-8"))
    assert sorted(summary["per_class_accuracy"]) == ["café", "thé"]
    at = open_data_page(result.run_dir.name)
    assert [m.value for m in at.markdown if m.value.startswith("**")] == ["**café**", "**thé**"]
    # Both pages raised UnicodeEncodeError on 'caf\\udce9', the class name this archive used to get.
    errors = open_view("views/errors.py", result.run_dir.name)
    assert list(errors.dataframe[-1].value["Class"]) == ["café", "thé"]  # per-class scores
    gallery = open_view("views/gallery.py", result.run_dir.name)
    assert any("café" in image.captions[0] for image in gallery.image)
