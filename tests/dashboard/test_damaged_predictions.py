"""Damaged prediction files and checkpoints, as the Errors and Gallery pages show them: one sentence
naming the damaged file, never a traceback.

The fixture is a real tiny run (tests.helpers.train_tiny_run); each case copies it and damages one
file the way a crash, a foreign tool or a diverged training would.
"""
from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.analysis import dynamics
from core.rundir import catalog, checkpoints, predictions
from core.training.inference import Predictor
from tests.helpers import open_view, shown, train_tiny_run


def rewrite_test(**changes) -> Callable[[Path], None]:
    """Replace some arrays of predictions/test.npz (None drops one)."""
    def damage(run: Path) -> None:
        path = run / "predictions" / "test.npz"
        with np.load(path) as saved:
            arrays = {k: saved[k] for k in saved.files}
        arrays.update(changes)
        np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return damage


def rewrite_val_epoch(transform: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        path = run / "predictions" / "val_epoch_0001.npz"
        with np.load(path) as saved:
            probs = saved["probs"]
        np.savez(path, probs=transform(probs))
    return damage


def write(relative: str, data: bytes) -> Callable[[Path], None]:
    return lambda run: (run / relative).write_bytes(data)


def make_fifo(relative: str) -> Callable[[Path], None]:
    """Put a named pipe where the file was: opening it for reading would wait for a writer forever."""
    def damage(run: Path) -> None:
        (run / relative).unlink()
        os.mkfifo(run / relative)
    return damage


N, C = 500, 10  # the tiny synthetic run's test set and classes
# name -> (how the files are damaged, the split the page must show, a phrase of the sentence shown)
TEST_DAMAGE = {
    "label out of range": (rewrite_test(labels=np.full(N, C)), "its 'labels' go up to class 10"),
    "negative prediction": (rewrite_test(pred=np.full(N, -1)), "its 'pred' include the negative number -1"),
    # Range-checked before the cast: as int64, 2**64-1 would be -1 and pass a check for negative numbers.
    "uint64 labels": (rewrite_test(labels=np.full(N, 2**64 - 1, np.uint64)),
                      "its 'labels' include the number 18446744073709551615, far beyond any class"),
    "bool labels": (rewrite_test(labels=np.ones(N, bool)), "its 'labels' are true/false values, not whole numbers"),
    "probs too narrow": (rewrite_test(probs=np.full((N, 3), 1 / 3, np.float32)), "cover only 3 classes"),
    "probs 1-D": (rewrite_test(probs=np.full(N, 0.1, np.float32)), "their shape is (500,)"),
    "float labels": (rewrite_test(labels=np.zeros(N)), "its 'labels' are decimal numbers, not whole numbers"),
    "string labels": (rewrite_test(labels=np.array(["cat"] * N)), "its 'labels' are text"),
    "rows disagree": (rewrite_test(index=np.arange(N - 1)), "its 'index' should be 500 numbers"),
    "no labels": (rewrite_test(labels=None), "it lacks the array 'labels'"),
    "empty file": (write("predictions/test.npz", b""), "it cannot be read as saved predictions"),
    "a FIFO": (make_fifo("predictions/test.npz"), "it is a named pipe (FIFO), not a regular file"),
    "empty arrays": (rewrite_test(labels=np.zeros(0, np.int64), pred=np.zeros(0, np.int64),
                                  probs=np.zeros((0, C), np.float32), index=np.zeros(0, np.int64),
                                  loss=np.zeros(0, np.float32)), "holds no pictures"),
    "diverged (NaN)": (rewrite_test(probs=np.full((N, C), np.nan, np.float32)), "not numbers (NaN or infinite)"),
    "probabilities above 1": (rewrite_test(probs=np.full((N, C), 7.0, np.float32)), "instead of staying between 0 and 1"),
}
VAL_DAMAGE = {
    "val epoch too narrow": (rewrite_val_epoch(lambda p: p[:, :3]), "its probabilities cover 3 classes"),
    "val epoch short": (rewrite_val_epoch(lambda p: p[:-7]), "does not fit predictions/val_labels.npz"),
    "val labels missing": (lambda run: (run / "predictions" / "val_labels.npz").unlink(),
                           "predictions/val_labels.npz is missing"),
}


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """runs/ with the good tiny run and one damaged copy per case; yields (runs folder, case -> run id)."""
    folder = tmp_path_factory.mktemp("damaged-predictions")
    good = train_tiny_run(folder, name="good", epochs=1).run_dir
    ids = {"good": good.name}
    cases = {**{k: v[0] for k, v in {**TEST_DAMAGE, **VAL_DAMAGE}.items()},
             "stray val file": write("predictions/val_epoch_copy.npz", b"a copy made by hand"),
             "summary per_class_accuracy 5": lambda run: (run / "test_summary.json").write_text(
                 json.dumps({"accuracy": 0.5, "per_class_accuracy": 5})),
             "summary per_class_accuracy list": lambda run: (run / "test_summary.json").write_text(
                 json.dumps({"accuracy": 0.5, "per_class_accuracy": [0.5] * C}))}
    for k, (case, damage) in enumerate(cases.items()):
        copy = folder / f"{good.name}-{k}"
        shutil.copytree(good, copy)
        damage(copy)
        ids[case] = copy.name
    return folder, ids


def one_sentence(text: str) -> bool:
    return text.endswith(".") and ". " not in text and "\n" not in text


# ---------------------------------------------------------------------------------------------
# The pages
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("page", ["views/errors.py", "views/gallery.py", "views/calibration.py",
                                  "views/labels.py"])
@pytest.mark.parametrize("case", list(TEST_DAMAGE))
def test_a_damaged_test_file_is_one_sentence_on_the_page(damaged, monkeypatch, page, case):
    folder, ids = damaged
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(folder))
    at = open_view(page, ids[case])
    warnings = [shown(w.value) for w in at.warning]
    assert len(warnings) == 1 and warnings[0].startswith("predictions/test.npz "), warnings
    assert TEST_DAMAGE[case][1] in warnings[0] and one_sentence(warnings[0])
    assert not at.get("vega_lite_chart") and not at.image and not at.get("progress")  # nothing drawn from it


@pytest.mark.parametrize("case", list(VAL_DAMAGE))
def test_a_damaged_validation_file_is_one_sentence_on_the_errors_page(damaged, monkeypatch, case):
    folder, ids = damaged
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(folder))
    at = open_view("views/errors.py", ids[case])
    assert not at.warning and at.get("vega_lite_chart")  # the test set is fine and still shown
    at.radio(key="errors_split").set_value("val").run()
    assert not at.exception, at.exception
    warnings = [shown(w.value) for w in at.warning]
    assert len(warnings) == 1 and VAL_DAMAGE[case][1] in warnings[0] and one_sentence(warnings[0]), warnings
    assert not at.get("vega_lite_chart")


@pytest.mark.parametrize("case", list(VAL_DAMAGE))
def test_a_damaged_validation_file_is_one_sentence_on_the_dynamics_page(damaged, monkeypatch, case):
    folder, ids = damaged
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(folder))
    at = open_view("views/dynamics.py", ids[case])
    warnings = [shown(w.value) for w in at.warning]
    assert len(warnings) == 1 and warnings[0].startswith("Epoch 1 is left out: "), warnings
    assert VAL_DAMAGE[case][1] in warnings[0] and one_sentence(warnings[0]), warnings
    assert at.info.values == [dynamics.too_few_epochs(0)] and not at.get("vega_lite_chart")


def test_a_stray_validation_file_is_not_an_epoch(damaged, monkeypatch):
    folder, ids = damaged
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(folder))
    assert predictions.val_epochs(folder / ids["stray val file"]) == [1]
    at = open_view("views/errors.py", ids["stray val file"])
    at.radio(key="errors_split").set_value("val").run()
    assert not at.exception and not at.warning
    assert "Epoch 1: the only epoch finished so far." in [c.value for c in at.caption]
    assert at.get("vega_lite_chart")


@pytest.mark.parametrize("page", ["views/errors.py", "views/gallery.py"])
@pytest.mark.parametrize("case", ["summary per_class_accuracy 5", "summary per_class_accuracy list"])
def test_a_damaged_test_summary_still_names_the_classes(damaged, monkeypatch, page, case):
    from core.data import SYNTHETIC_CLASSES

    folder, ids = damaged
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(folder))
    at = open_view(page, ids[case])
    if page == "views/errors.py":
        assert at.dataframe[0].value["Class"].tolist() == list(SYNTHETIC_CLASSES)  # from the data instead
    else:
        assert list(at.selectbox(key="gallery_true").options) == ["Any", *SYNTHETIC_CLASSES]


# ---------------------------------------------------------------------------------------------
# Checkpoints checked before the Gallery uses them for uploads
# ---------------------------------------------------------------------------------------------

def change_checkpoint(run: Path, change: Callable[[dict], None]) -> None:
    for which in ("last", "best"):
        payload = checkpoints.load_checkpoint(checkpoints.checkpoint_path(run, which))
        change(payload)
        checkpoints.save_checkpoint(run, which, payload)


def first_float_weights(payload: dict) -> torch.Tensor:
    return next(v for v in payload["model_state"].values() if v.is_floating_point())


CHECKPOINT_DAMAGE = {
    "another model's name": (lambda c: c.update(model="resnet20"),
                             "says its model is 'resnet20', but its weights are not that model's"),
    "an unknown model": (lambda c: c.update(model="no-such-net"),
                         "names the model 'no-such-net', which is not one this version knows"),
    "too few class names": (lambda c: c.update(classes=c["classes"][:7]),
                            "names 7 classes but its weights tell 10 classes apart"),
    "class names that are numbers": (lambda c: c.update(classes=list(range(10))), "has no usable class names"),
    "no normalisation": (lambda c: c.pop("normalization"), "lacks the image normalisation (mean and std)"),
    "a zero std": (lambda c: c["normalization"].update(std=[0.2, 0.0, 0.2]), "has an unusable normalisation"),
    "diverged weights": (lambda c: first_float_weights(c).fill_(float("nan")), "weights that are not numbers"),
}


@pytest.fixture(scope="module")
def bad_checkpoints(damaged):
    folder, ids = damaged
    good = folder / ids["good"]
    made = {}
    for k, (case, (change, _)) in enumerate(CHECKPOINT_DAMAGE.items()):
        copy = folder / f"{good.name}-ckpt{k}"
        shutil.copytree(good, copy)
        change_checkpoint(copy, change)
        made[case] = copy.name
    return folder, made


@pytest.mark.parametrize("case", list(CHECKPOINT_DAMAGE))
def test_a_bad_checkpoint_refuses_uploads_in_one_sentence(bad_checkpoints, monkeypatch, case):
    folder, ids = bad_checkpoints
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(folder))
    with pytest.raises(catalog.RunError, match="^Checkpoint last.pt of "):
        Predictor.from_run(folder / ids[case], torch.device("cpu"))
    at = open_view("views/gallery.py", ids[case])
    png = io.BytesIO()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(png, format="PNG")
    at.file_uploader(key="gallery_upload").set_value(("cat.png", png.getvalue(), "image/png")).run()
    assert not at.exception, at.exception
    errors = [shown(e.value) for e in at.error]
    assert len(errors) == 1 and CHECKPOINT_DAMAGE[case][1] in errors[0] and one_sentence(errors[0]), errors
    assert errors[0].startswith(f"Checkpoint last.pt of {ids[case]} ")
    assert not [i for i in at.image if i.captions[0].startswith("cat.png")]  # no prediction shown
