"""Run names, class names, file names and messages from disk are shown as text on every page, never
as Markdown: a name like `![t](http://host/pixel.png)` must not become an image the browser fetches,
nor `[click](http://host/phish)` a live link.

AppTest gives each element's Markdown source; the checks are that no source on the page holds live
markup (an unescaped bracket, a bare URL, a shortcode) and that the names appear, escaped, where the
page shows them. tests/browser/test_browser_names.py checks the same in a real browser.
"""
from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.data import load_dataset
from dashboard.text import plain
from tests.helpers import open_view, shown, train_tiny_run

HOSTILE_RUN = "![t](http://127.0.0.1:9/pixel.png) [click](http://127.0.0.1:9/phish)"
# Folder names cannot hold '/', so the class names use relative addresses, maths, shortcodes and HTML.
HOSTILE_CLASSES = ["![c](pixel.png)", "[k](phish) www.example.com", ":smile: $x^2$ <img src=pixel.png>", "plain"]
# Markup that would render as something other than its characters: a link or image bracket, HTML,
# maths, code, a bare URL or e-mail address, an emoji/icon shortcode or a Streamlit directive.
LIVE_MARKUP = re.compile(r"(?<!\\)[\[\]<>$`]|://|www\.|@\w|:[\w+-]")


def make_hostile_folder(root: Path) -> Path:
    """An ImageFolder whose class folder names are Markdown, with synthetic pictures in them."""
    synthetic = load_dataset("synthetic")
    for split, image_set, per_class in (("train", synthetic.train, 30), ("test", synthetic.test, 10)):
        for k, name in enumerate(HOSTILE_CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in np.flatnonzero(image_set.labels == k)[:per_class]:
                Image.fromarray(image_set.images[i]).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """runs/ with a hostile-named run trained on hostile class names, and a failed copy whose error is hostile."""
    root = tmp_path_factory.mktemp("names")
    runs_dir = root / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIFAR_RUNS_DIR", str(runs_dir))
        mp.setenv("CIFAR_CACHE_DIR", str(root / "cache"))
        data = make_hostile_folder(root / "data")
        trained = train_tiny_run(runs_dir, name=HOSTILE_RUN, data=str(data), epochs=1).run_dir
        failed = runs_dir / f"{trained.name}-failed"
        shutil.copytree(trained, failed)
        status = json.loads((failed / "status.json").read_text())
        status.update(state="failed", error=f"It broke on {HOSTILE_RUN}.")
        (failed / "status.json").write_text(json.dumps(status))
        classes = list(load_dataset(str(data)).classes)
        yield {"dir": runs_dir, "trained": trained.name, "failed": failed.name, "classes": classes}


def open_page(hostile, page: str | None, run_key: str = "trained") -> AppTest:
    return open_view(page, hostile[run_key])


def rerun(at: AppTest, run_id: str) -> AppTest:
    at.session_state["run_id"] = run_id
    at.run()
    assert not at.exception, at.exception
    return at


def markdown_sources(at: AppTest) -> list[str]:
    """The Markdown source of everything on the page that Streamlit renders as Markdown."""
    kinds = ("markdown", "caption", "title", "header", "subheader", "warning", "error", "info", "success")
    sources = [element.value for kind in kinds for element in getattr(at, kind)]
    sources += [b.label for b in at.button] + [b.help or "" for b in at.button]
    sources += [p.proto.text for p in at.get("progress")]
    sources += [caption for image in at.image for caption in image.captions]
    return sources


def assert_no_live_markup(at: AppTest) -> list[str]:
    sources = markdown_sources(at)
    assert [s for s in sources if LIVE_MARKUP.search(s)] == []
    return sources


@pytest.fixture(autouse=True)
def _runs_dir(hostile, monkeypatch):
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(hostile["dir"]))


def test_plain_keeps_every_character_and_leaves_no_live_markup():
    for text in [HOSTILE_RUN, *HOSTILE_CLASSES, "- a list?", "1. a list?", "a\\b", "x@example.com"]:
        assert shown(plain(text)) == text and not LIVE_MARKUP.search(plain(text))


def test_train_page_shows_the_run_name_and_its_error_as_text(hostile):
    at = open_page(hostile, None)
    sources = assert_no_live_markup(at)
    assert at.subheader[-1].value == plain(HOSTILE_RUN)
    # The live matrix's sentence names the most mixed-up pair with the class names escaped.
    (pair_line,) = [s for s in sources if s.startswith("Right now it mixes up")]
    assert sum(f"**{plain(c)}**" in pair_line for c in hostile["classes"]) == 2
    rerun(at, hostile["failed"])
    assert_no_live_markup(at)
    assert [shown(e.value) for e in at.error] == [f"It broke on {HOSTILE_RUN}."]
    assert sources


def test_runs_page_shows_the_run_name_and_its_error_as_text(hostile):
    at = open_page(hostile, "views/runs.py", "failed")
    at.selectbox(key="runs_manage").set_value(hostile["failed"]).run()
    at.button(key="runs_delete").click().run()
    sources = assert_no_live_markup(at)
    assert f"Delete “{plain(HOSTILE_RUN)}” and all its files" in at.warning[0].value
    assert f"failed: {plain('It broke on ' + HOSTILE_RUN + '.')}" in sources
    at.button(key="runs_delete_cancel").click().run()


def test_data_page_shows_class_names_as_text(hostile):
    at = open_page(hostile, "views/data.py")
    assert_no_live_markup(at)
    bold = [m.value for m in at.markdown if m.value.startswith("**")]
    assert bold == [f"**{plain(c)}**" for c in hostile["classes"]]


def test_errors_page_shows_class_names_as_text(hostile):
    at = open_page(hostile, "views/errors.py")
    sources = assert_no_live_markup(at)
    classes = hostile["classes"]
    pair_lines = [s for s in sources if "↔" in s and s[0].isdigit()]
    assert pair_lines and all(any(plain(c) in line for c in classes) for line in pair_lines)
    first = next(b for b in at.button if b.key.startswith("errors_pair_") and not b.disabled)
    first.click().run()
    sources = assert_no_live_markup(at)
    t, p = (classes.index(name) for name in at.session_state["errors_cell"])
    assert f"{plain(classes[t])} taken for {plain(classes[p])}" in [h.value for h in at.subheader]
    assert all(c.startswith(f"True: {plain(classes[t])} · Predicted: {plain(classes[p])} ·")
               for c in sources if c.startswith("True: "))


def test_gallery_shows_class_and_file_names_as_text(hostile):
    at = open_page(hostile, "views/gallery.py")
    sources = assert_no_live_markup(at)
    assert sum(s.startswith("True: ") for s in sources) == 24  # a page of tiles, their captions escaped
    png = io.BytesIO()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(png, format="PNG")
    upload = "![u](http://127.0.0.1:9/u.png).png"
    at.file_uploader(key="gallery_upload").set_value((upload, png.getvalue(), "image/png")).run()
    assert not at.exception
    sources = assert_no_live_markup(at)
    assert any(s.startswith(f"{plain(upload)}: ") for s in sources)


def test_compare_page_shows_run_and_class_names_as_text(hostile, tmp_path, monkeypatch):
    from core.rundir import predictions

    runs_dir = tmp_path / "runs"  # a private copy: run B here answers differently, other tests see no change
    shutil.copytree(hostile["dir"] / hostile["trained"], runs_dir / hostile["trained"])
    other = runs_dir / f"{hostile['trained']}-b"
    shutil.copytree(runs_dir / hostile["trained"], other)
    saved = predictions.load_predictions(other)
    probs = np.roll(saved.probs, 1, axis=1)  # every answer moves to the next class: every picture flips
    predictions.save_test_predictions(other, saved.labels, probs, saved.loss, saved.index)
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(runs_dir))
    at = open_view("views/compare.py", hostile["trained"], compare_b=other.name)
    assert_no_live_markup(at)
    labels = [m.label for m in at.metric]
    assert all(plain(HOSTILE_RUN) in label and not LIVE_MARKUP.search(label) for label in labels)
    classes = hostile["classes"]
    right = saved.labels[saved.pred == saved.labels]
    t = int(np.bincount(right, minlength=len(classes)).argmax())  # a class with pictures right in A, so flipped
    at.session_state["compare_cell"] = (classes[t], classes[t])  # what a click on the diagonal stores
    at.run()
    sources = assert_no_live_markup(at)
    assert f"{plain(classes[t])}: flipped pictures" in [h.value for h in at.subheader]
    tiles = [s for s in sources if s.startswith("True: ")]
    assert tiles and all(s.startswith(f"True: {plain(classes[t])} · A: ") for s in tiles)
