"""Tiny ImageFolder trees and archives with known colours, and a fresh cache, for the core.data tests."""
from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import core.data.cifar10
import core.data.folders

# ---------------------------------------------------------------------------------------------
# Helpers: tiny ImageFolder trees with known colours
# ---------------------------------------------------------------------------------------------

# (file name, PIL mode, size, fill) per image; the decoded RGB colour is checked against EXPECTED_RGB.
TREE_IMAGES = [
    ("a.png", "RGB", (32, 32), (200, 10, 10)),
    ("b.jpg", "RGB", (40, 24), (10, 200, 10)),  # not 32x32: resized
    ("c.png", "L", (32, 32), 128),
    ("d.png", "RGBA", (16, 16), (10, 10, 200, 255)),
    ("e.png", "P", (64, 64), 1),  # palette index 1 -> PALETTE_RGB
]
PALETTE_RGB = (250, 200, 0)
EXPECTED_RGB = {"a.png": (200, 10, 10), "b.jpg": (10, 200, 10), "c.png": (128, 128, 128),
                "d.png": (10, 10, 200), "e.png": PALETTE_RGB}


def _encode(mode: str, size: tuple[int, int], fill: object, fmt: str) -> bytes:
    image = Image.new(mode, size, fill)  # type: ignore[arg-type]
    if mode == "P":
        image.putpalette([0, 0, 0, *PALETTE_RGB] + [0] * (256 * 3 - 6))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def make_tree(root: Path, classes: dict[str, list[str]] | None = None, n_images: int = 5) -> Path:
    """Write train/<class>/ and test/<class>/ with the first `n_images` of TREE_IMAGES, plus junk to ignore."""
    classes = classes or {"train": ["cat", "dog", "zebra"], "test": ["cat", "dog", "zebra"]}
    for split, names in classes.items():
        for cls in names:
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for name, mode, size, fill in TREE_IMAGES[:n_images]:
                fmt = "JPEG" if name.endswith(".jpg") else "PNG"
                (folder / name).write_bytes(_encode(mode, size, fill, fmt))
            (folder / "notes.txt").write_text("not an image")
            (folder / ".hidden.png").write_bytes(b"not even a png")
    (root / "README.md").write_text("a tiny tree")
    return root


def make_archive(tree: Path, archive: Path, prefix: str = "", junk: bool = True) -> Path:
    """Pack `tree` into a .zip or tar archive (members under `prefix`), with macOS junk members."""
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive, "w") as zf:
            for p in files:
                zf.write(p, prefix + p.relative_to(tree).as_posix())
            if junk:
                zf.writestr("__MACOSX/train/cat/._a.png", b"resource fork")
    else:
        mode = "w" if archive.name.endswith(".tar") else "w:gz"
        with tarfile.open(archive, mode) as tf:
            for p in files:
                tf.add(p, prefix + p.relative_to(tree).as_posix())
            if junk:
                info = tarfile.TarInfo("__MACOSX/train/cat/._a.png")
                info.size = 13
                tf.addfile(info, io.BytesIO(b"resource fork"))
    return archive


def _expected_colours(n_images: int = 5) -> np.ndarray:
    names = sorted(name for name, *_ in TREE_IMAGES[:n_images])
    return np.array([EXPECTED_RGB[name] for name in names], dtype=np.int64)  # (n, 3), files in name order


def one_sentence(message: str) -> None:
    assert message.endswith(".") and ". " not in message and "\n" not in message, message
    assert "object at 0x" not in message, "names the file, never a Python object"


def forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(path: Path) -> None:
        raise AssertionError(f"decoded {path} again instead of using the cache")

    monkeypatch.setattr(core.data.folders, "_decode_source", fail)
