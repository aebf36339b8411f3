"""No page raises on a damaged runs folder, and a hostile run name typed in the UI stays inside runs/."""
import shutil
from pathlib import Path

import pytest

from core.rundir import catalog
from tests.helpers import new_session, open_view, train_tiny_run

PAGES = ["views/train.py", "views/runs.py", "views/data.py", "views/errors.py", "views/dynamics.py",
         "views/gallery.py", "views/calibration.py", "views/labels.py"]


def damage(folder: Path, good: Path, name: str, how) -> str:
    copy = folder / f"{good.name}-{name}"
    shutil.copytree(good, copy)
    how(copy)
    return copy.name


def cut(path: Path, keep: int = 100) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    folder = tmp_path_factory.mktemp("damaged-runs")
    good = train_tiny_run(folder, name="good", epochs=1).run_dir
    ids = {
        "torn metrics": damage(folder, good, "torn", lambda p: open(p / "metrics.jsonl", "a").write('{"kind": "tr')),
        "garbage metrics": damage(folder, good, "garbage", lambda p: open(p / "metrics.jsonl", "a").write("\x00\xff{]\n")),
        "truncated checkpoints": damage(folder, good, "ckpt", lambda p: [cut(p / "checkpoints" / f) for f in ("last.pt", "best.pt")]),
        "truncated predictions": damage(folder, good, "preds", lambda p: cut(p / "predictions" / "test.npz")),
        "garbage summary": damage(folder, good, "summary", lambda p: (p / "test_summary.json").write_text("[1, 2")),
        "missing status": damage(folder, good, "nostatus", lambda p: (p / "status.json").unlink()),
        "missing config": damage(folder, good, "noconfig", lambda p: (p / "config.json").unlink()),
    }
    (folder / "stray-folder").mkdir()
    (folder / "stray-file.txt").write_text("not a run")
    return folder, ids


def test_damaged_folders_are_listed_with_a_clear_state(damaged):
    folder, ids = damaged
    listed = {s.run_id: s for s in catalog.list_runs(folder)}
    assert listed[ids["missing status"]].state == "damaged" and listed["stray-folder"].state == "damaged"
    assert listed[ids["torn metrics"]].state == "completed"  # a torn line costs that line only
    assert len(catalog.read_metrics(listed[ids["torn metrics"]].path)) == len(
        catalog.read_metrics(listed[ids["garbage metrics"]].path))
    assert "stray-file.txt" not in listed


@pytest.mark.parametrize("page", PAGES)
def test_no_page_raises_whichever_run_is_picked(damaged, page, monkeypatch):
    folder, ids = damaged
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(folder))
    at = new_session()
    at.run()
    at.switch_page(page)
    pickable = [s.run_id for s in catalog.list_runs(folder) if s.state != "damaged"]  # the picker leaves those out
    assert set(pickable) >= set(ids.values()) - {ids["missing status"]}
    for run_id in pickable:
        at.session_state["run_id"] = run_id
        at.run()
        assert not at.exception, (run_id, at.exception)


def test_a_truncated_checkpoint_refuses_uploads_in_one_sentence(damaged, monkeypatch):
    import io

    import numpy as np
    from PIL import Image

    folder, ids = damaged
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(folder))
    at = open_view("views/gallery.py", ids["truncated checkpoints"])
    png = io.BytesIO()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(png, format="PNG")
    at.file_uploader(key="gallery_upload").set_value(("cat.png", png.getvalue(), "image/png"))
    at.run()
    assert not at.exception
    assert any("cannot be loaded safely" in e.value for e in at.error), [e.value for e in at.error]


@pytest.mark.parametrize("name", ["../../escape", "/etc/passwd", "a/b\\c", "x" * 100, "猫と犬 🐱", ". ."])
def test_a_hostile_run_name_typed_in_the_ui_stays_inside_runs(tmp_path, monkeypatch, name):
    runs_dir = tmp_path / "runs"
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(runs_dir))
    at = open_view()
    at.radio(key="train_data_kind").set_value("synthetic")
    at.selectbox(key="train_model").set_value("tutorial-cnn")
    at.number_input(key="train_epochs").set_value(1)
    at.number_input(key="train_warmup_epochs").set_value(0.0)  # the preset's warm-up is longer than 1 epoch
    at.selectbox(key="train_device").set_value("cpu")
    at.text_input(key="train_name").input(name)
    at.button(key="train_start").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    created = [p for p in tmp_path.rglob("*") if p.is_dir() and p.parent == runs_dir]
    assert len(created) == 1 and created[0].resolve().parent == runs_dir.resolve()
    assert [p for p in tmp_path.iterdir()] == [runs_dir]  # nothing was written beside runs/
    assert catalog.list_runs(runs_dir)[0].name == name.strip()
    from dashboard import state
    state._job_manager(str(runs_dir)).wait(timeout=120)
