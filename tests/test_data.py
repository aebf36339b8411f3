"""Tests for core.data: sources (synthetic, folder, archives, cifar10), cache, split, stats, DeviceLoader.

Everything runs on CPU on tiny generated data, except `test_real_cifar10_archive` which decodes the real
CIFAR-10 JPEG archive once per session (through the `cifar_jpeg` fixture) and skips when it is absent.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import struct
import tarfile
import tracemalloc
import urllib.error
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import core.data as data
import core.data.cifar10
import core.data.folders
from core.augment import Augment
from core.data import (
    CACHE_ENV, CIFAR10_CLASSES, DataError, Dataset, DeviceLoader, ImageSet, channel_stats, decode_image,
    load_dataset, normalize_images, split_train_val,
)

pytestmark = pytest.mark.usefixtures("torch_single_thread")

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


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "tree")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache folder for this test only."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


# ---------------------------------------------------------------------------------------------
# Folder and archive sources
# ---------------------------------------------------------------------------------------------


def _check_tree_dataset(ds: Dataset) -> None:
    assert ds.classes == ("cat", "dog", "zebra")
    for split in (ds.train, ds.test):
        assert split.images.shape == (15, 32, 32, 3) and split.images.dtype == np.uint8
        assert split.labels.dtype == np.int64 and split.index.dtype == np.int64
        assert split.labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5  # sorted by class, then file name
        assert split.index.tolist() == list(range(15))
        centre = split.images[:, 8:24, 8:24].reshape(15, -1, 3).mean(1)  # (15, 3) mean colour
        expected = np.tile(_expected_colours(), (3, 1))
        assert np.abs(centre - expected).max() <= 6, "JPEG allows a few levels of error, PNG none"


def test_folder_source_decodes_modes_and_sizes(tree: Path, cache: Path) -> None:
    ds = load_dataset(str(tree))
    _check_tree_dataset(ds)
    assert ds.source == str(tree) and len(ds.fingerprint) == 16


@pytest.mark.parametrize("name, prefix", [("data.tar.gz", ""), ("data.tgz", "wrapped/"), ("data.zip", ""),
                                          ("data.zip", "wrapped/"), ("data.tar", "")])
def test_archive_sources_match_the_folder(tree: Path, cache: Path, tmp_path: Path, name: str, prefix: str) -> None:
    (tmp_path / "archives").mkdir()
    archive = make_archive(tree, tmp_path / "archives" / name, prefix)
    ds = load_dataset(str(archive))
    _check_tree_dataset(ds)
    folder_ds = load_dataset(str(tree))
    np.testing.assert_array_equal(ds.train.images, folder_ds.train.images)
    np.testing.assert_array_equal(ds.test.labels, folder_ds.test.labels)
    assert [p.name for p in archive.parent.iterdir()] == [name], "nothing is extracted beside the archive"


def test_decode_image_handles_modes_and_sizes() -> None:
    for name, mode, size, fill in TREE_IMAGES:
        out = decode_image(_encode(mode, size, fill, "JPEG" if name.endswith(".jpg") else "PNG"), name, Path("t"))
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8
        assert np.abs(out.reshape(-1, 3).mean(0) - EXPECTED_RGB[name]).max() <= 6


def test_decode_image_lays_transparency_on_white() -> None:
    out = decode_image(_encode("RGBA", (32, 32), (10, 10, 200, 0), "PNG"), "clear.png", Path("t"))
    assert (out == 255).all(), "transparent pixels become white, as for uploaded pictures"


def test_a_missing_path_names_it_and_the_allowed_sources(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist.*'cifar10', 'synthetic'"):
        load_dataset(str(tmp_path / "nope"))


@pytest.mark.parametrize("source", ["", "   "])
def test_an_empty_source_is_refused(source: str) -> None:
    with pytest.raises(DataError, match="empty"):
        load_dataset(source)


def test_a_file_that_is_not_an_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "images.rar"
    path.write_bytes(b"x")
    with pytest.raises(DataError, match="neither a folder nor a .tar.gz"):
        load_dataset(str(path))


def test_a_folder_without_train_is_refused(tmp_path: Path, cache: Path) -> None:
    root = make_tree(tmp_path / "t", {"test": ["cat", "dog"]}, n_images=1)
    with pytest.raises(DataError, match=r"no images under train/<class>/.*ImageFolder layout"):
        load_dataset(str(root))


def test_an_empty_folder_is_refused(tmp_path: Path, cache: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images under train"):
        load_dataset(str(tmp_path / "empty"))


def test_mismatched_classes_are_named(tmp_path: Path, cache: Path) -> None:
    root = make_tree(tmp_path / "t", {"train": ["cat", "dog", "emu"], "test": ["cat", "dog", "fox"]}, n_images=1)
    with pytest.raises(DataError, match=r"different classes.*only in train: \['emu'\].*only in test: \['fox'\]"):
        load_dataset(str(root))


def test_a_single_class_is_refused(tmp_path: Path, cache: Path) -> None:
    root = make_tree(tmp_path / "t", {"train": ["cat"], "test": ["cat"]}, n_images=1)
    with pytest.raises(DataError, match="at least 2 class"):
        load_dataset(str(root))


def test_a_corrupt_archive_is_refused(tmp_path: Path, cache: Path) -> None:
    for name in ("bad.tar.gz", "bad.zip"):
        (tmp_path / name).write_bytes(os.urandom(256))
        with pytest.raises(DataError, match="Could not read"):
            load_dataset(str(tmp_path / name))


def test_two_trees_in_one_archive_are_refused(tmp_path: Path, cache: Path) -> None:
    root = make_tree(tmp_path / "t", n_images=1)
    make_tree(root / "copy", n_images=1)  # a second train/test tree below the first one
    with pytest.raises(DataError, match="several train/test trees"):
        load_dataset(str(make_archive(root, tmp_path / "two.zip")))


# ---------------------------------------------------------------------------------------------
# Hostile and real-world sources: each refused in one sentence naming the file, or loaded safely
# ---------------------------------------------------------------------------------------------


def one_sentence(message: str) -> None:
    assert message.endswith(".") and ". " not in message and "\n" not in message, message
    assert "object at 0x" not in message, "names the file, never a Python object"


def refused(source: Path) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(str(source))
    one_sentence(str(info.value))
    return str(info.value)


def png_declaring(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes whose header claims a width x height 16-bit grey picture."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)  # 16-bit greyscale
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


@pytest.mark.parametrize("width, height", [(15000, 11000), (100_000, 100_000)])
def test_a_decompression_bomb_in_a_folder_is_refused_from_its_header(tmp_path: Path, cache: Path,
                                                                     width: int, height: int) -> None:
    root = make_tree(tmp_path / "t", n_images=1)
    (root / "train" / "cat" / "bomb.png").write_bytes(png_declaring(width, height))
    message = refused(root)
    assert message.startswith(f"Image 'train/cat/bomb.png' in {root} ") and "50 million pixels" in message


def test_a_big_16_bit_picture_is_reduced_before_any_float_copy() -> None:
    ramp = np.repeat(np.linspace(0, 65535, 4000).astype(np.uint16)[None], 3000, axis=0)  # (3000, 4000), 12 MP
    encoded = io.BytesIO()
    Image.fromarray(ramp).save(encoded, "PNG", compress_level=1)
    tracemalloc.start()  # sees numpy's buffers (not Pillow's): a float64 copy of the picture would be 96 MB
    try:
        out = decode_image(encoded.getvalue(), "ramp.png", Path("t"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, f"{peak / 2**20:.0f} MiB of numpy copies"
    assert out[0, 0, 0] <= 8 and out[0, -1, 0] >= 247 and np.all(np.diff(out[0, :, 0].astype(int)) >= 0)


def _cut_png() -> bytes:
    pixels = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    encoded = io.BytesIO()
    Image.fromarray(pixels).save(encoded, "PNG")
    return encoded.getvalue()[:2000]


@pytest.mark.parametrize("kind", ["folder", "zip", "tar.gz"])
@pytest.mark.parametrize("content, problem", [(b"\x89PNG but not really", "is not a PNG, JPEG"),
                                              (_cut_png(), "is damaged or incomplete")],
                         ids=["not-an-image", "cut-off"])
def test_a_bad_image_is_named_with_its_source(tmp_path: Path, cache: Path, kind: str, content: bytes,
                                              problem: str) -> None:
    root = make_tree(tmp_path / "t", n_images=1)
    (root / "train" / "dog" / "broken.png").write_bytes(content)
    source = root if kind == "folder" else make_archive(root, tmp_path / f"data.{kind}")
    message = refused(source)
    assert message.startswith(f"Image 'train/dog/broken.png' in {source} {problem}"), message


def patch_zip_headers(archive: Path, flags: int = 0, method: int | None = None) -> None:
    """Set general-purpose flag bits and/or the compression method of every member (local and central headers)."""
    raw = bytearray(archive.read_bytes())
    for signature, flags_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        start = raw.find(signature)
        while start != -1:
            old = int.from_bytes(raw[start + flags_at:start + flags_at + 2], "little")
            raw[start + flags_at:start + flags_at + 2] = (old | flags).to_bytes(2, "little")
            if method is not None:
                raw[start + method_at:start + method_at + 2] = method.to_bytes(2, "little")
            start = raw.find(signature, start + 4)
    archive.write_bytes(raw)


def test_a_password_protected_zip_is_refused(tmp_path: Path, cache: Path) -> None:
    archive = make_archive(make_tree(tmp_path / "t", n_images=1), tmp_path / "locked.zip", junk=False)
    patch_zip_headers(archive, flags=0x1)  # the zip format's "encrypted" bit
    message = refused(archive)
    assert message.startswith("Archive member 'test/cat/a.png' in") and str(archive) in message
    assert "encrypted (password-protected)" in message and "without a password" in message


@pytest.mark.parametrize("method", [9, 99])  # deflate64 and WinZip AES: zipfile reads neither
def test_a_zip_compression_method_zipfile_lacks_is_refused(tmp_path: Path, cache: Path, method: int) -> None:
    archive = make_archive(make_tree(tmp_path / "t", n_images=1), tmp_path / "odd.zip", junk=False)
    patch_zip_headers(archive, method=method)
    message = refused(archive)
    assert message.startswith("Archive member 'test/cat/a.png' in") and str(archive) in message
    assert f"compression method this program cannot read (method {method})" in message


LATIN1_CLASSES = {b"caf\xe9": "café", "naïve".encode(): "naïve"}  # a Latin-1 and a UTF-8 class folder
LATIN1_FILES = (b"a.png", b"\xe9t\xe9.png")  # plain, and a Latin-1 file name inside both classes


def make_latin1_tree(root: Path) -> Path:
    """train/ and test/ whose folder and file names are raw bytes, some of them not UTF-8."""
    png = _encode("RGB", (32, 32), (200, 10, 10), "PNG")
    for split in ("train", "test"):
        for folder_name in LATIN1_CLASSES:
            folder = os.path.join(os.fsencode(root), split.encode(), folder_name)
            os.makedirs(folder)
            for file_name in LATIN1_FILES:
                Path(os.fsdecode(os.path.join(folder, file_name))).write_bytes(png)
    return root


def make_latin1_tar(archive: Path) -> Path:
    """The same names in a tar written by a Latin-1 system (GNU format, names stored as Latin-1 bytes)."""
    png = _encode("RGB", (32, 32), (200, 10, 10), "PNG")
    with tarfile.open(archive, "w:gz", format=tarfile.GNU_FORMAT, encoding="latin-1") as tf:
        for split in ("train", "test"):
            for name in ("café", "naïve"):
                for file_name in ("a.png", "été.png"):
                    info = tarfile.TarInfo(f"{split}/{name}/{file_name}")
                    info.size = len(png)
                    tf.addfile(info, io.BytesIO(png))
    return archive


@pytest.mark.parametrize("kind", ["folder", "tar.gz"])
def test_names_that_are_not_utf8_load_as_readable_text(tmp_path: Path, cache: Path, kind: str) -> None:
    source = make_latin1_tree(tmp_path / "t") if kind == "folder" else make_latin1_tar(tmp_path / "t.tar.gz")
    for ds in (load_dataset(str(source)), load_dataset(str(source))):  # decoded, then from the cache
        assert ds.classes == ("café", "naïve") and ds.train.labels.tolist() == [0, 0, 1, 1]
        assert json.dumps(ds.classes, ensure_ascii=False).encode() == '["café", "naïve"]'.encode()


def test_readable_name_decodes_each_part_of_a_path_on_its_own() -> None:
    on_disk = os.fsdecode("naïve".encode() + b"/caf\xe9")  # a UTF-8 folder, a Latin-1 file inside
    assert "\udce9" in on_disk and data.readable_name(on_disk) == "naïve/café"
    assert data.readable_name("train/cat/a.png") == "train/cat/a.png"


# ---------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------


def _forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(path: Path) -> None:
        raise AssertionError(f"decoded {path} again instead of using the cache")

    monkeypatch.setattr(core.data.folders, "_decode_source", fail)


@pytest.mark.parametrize("kind", ["folder", "tar.gz"])
def test_second_load_comes_from_the_cache(tree: Path, cache: Path, tmp_path: Path, kind: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    source = tree if kind == "folder" else make_archive(tree, tmp_path / "d.tar.gz")
    first = load_dataset(str(source))
    files = sorted(p.name for p in (cache / first.fingerprint).iterdir())
    assert files == ["meta.json", "test_images.npy", "test_labels.npy", "train_images.npy", "train_labels.npy"]
    _forbid_decoding(monkeypatch)
    second = load_dataset(str(source))
    assert second.fingerprint == first.fingerprint and second.classes == first.classes
    np.testing.assert_array_equal(second.train.images, first.train.images)
    np.testing.assert_array_equal(second.test.labels, first.test.labels)


def test_a_changed_folder_gets_a_new_fingerprint(tree: Path, cache: Path) -> None:
    first = load_dataset(str(tree)).fingerprint
    assert load_dataset(str(tree)).fingerprint == first
    (tree / "train" / "cat" / "f.png").write_bytes(_encode("RGB", (32, 32), (1, 2, 3), "PNG"))
    changed = load_dataset(str(tree))
    assert changed.fingerprint != first and len(changed.train) == 16


def test_a_changed_archive_gets_a_new_fingerprint(tree: Path, cache: Path, tmp_path: Path) -> None:
    archive = make_archive(tree, tmp_path / "d.zip")
    first = load_dataset(str(archive)).fingerprint
    (tree / "test" / "dog" / "f.png").write_bytes(_encode("RGB", (32, 32), (1, 2, 3), "PNG"))
    make_archive(tree, archive)
    changed = load_dataset(str(archive))
    assert changed.fingerprint != first and len(changed.test) == 16


def test_cache_defaults_to_data_dir_and_leaves_the_source_alone(tree: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    before = sorted(p.relative_to(tree) for p in tree.rglob("*"))
    ds = load_dataset(str(tree), data_dir=tmp_path / "data")
    assert (tmp_path / "data" / "cache" / ds.fingerprint / "meta.json").is_file()
    assert sorted(p.relative_to(tree) for p in tree.rglob("*")) == before
    assert not list((tmp_path / "data" / "cache" / ds.fingerprint).glob("*.tmp")), "no temporary files left"


def test_an_unreadable_cache_is_rebuilt(tree: Path, cache: Path) -> None:
    ds = load_dataset(str(tree))
    (cache / ds.fingerprint / "train_images.npy").write_bytes(b"garbage")
    again = load_dataset(str(tree))
    np.testing.assert_array_equal(again.train.images, ds.train.images)


# ---------------------------------------------------------------------------------------------
# cifar10 source (torchvision is faked: tests never touch the network)
# ---------------------------------------------------------------------------------------------


def test_cifar10_without_network_says_where_it_looked_and_how_to_fix(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", data_dir=tmp_path / "d")
    message = str(info.value)
    assert f"not found in {tmp_path / 'd'}" in message
    assert "connect to the internet so torchvision can download it" in message
    assert "--data" in message and "ImageFolder layout" in message
    assert not (tmp_path / "d").exists(), "nothing is created when the download fails"


class _FakeCIFAR10:
    """Stands in for torchvision's CIFAR10: writes the batch files it would download, serves tiny arrays."""

    calls = 0

    def __init__(self, root: str, train: bool, download: bool) -> None:
        type(self).calls += 1
        folder = Path(root) / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        for name in core.data.cifar10._CIFAR10_FILES:
            (folder / name).write_bytes(b"batch")
        n = 20 if train else 10
        self.data = np.random.default_rng(n).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        self.targets = [i % 10 for i in range(n)]


def test_cifar10_loads_through_torchvision_then_from_the_cache(tmp_path: Path, cache: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", _FakeCIFAR10)
    _FakeCIFAR10.calls = 0
    ds = load_dataset("cifar10", data_dir=tmp_path / "d")
    assert ds.classes == CIFAR10_CLASSES and len(ds.train) == 20 and len(ds.test) == 10
    assert ds.train.images.dtype == np.uint8 and ds.train.labels.tolist() == [i % 10 for i in range(20)]
    assert _FakeCIFAR10.calls == 2
    again = load_dataset("cifar10", data_dir=tmp_path / "d")
    assert _FakeCIFAR10.calls == 2, "the second load must come from the cache"
    assert again.fingerprint == ds.fingerprint
    np.testing.assert_array_equal(again.test.images, ds.test.images)


# ---------------------------------------------------------------------------------------------
# Synthetic source
# ---------------------------------------------------------------------------------------------


def test_synthetic_is_balanced_and_deterministic() -> None:
    ds = load_dataset("synthetic")
    assert ds.train.images.shape == (2000, 32, 32, 3) and ds.test.images.shape == (500, 32, 32, 3)
    assert ds.train.images.dtype == np.uint8 and len(ds.classes) == 10 == len(set(ds.classes))
    assert np.bincount(ds.train.labels).tolist() == [200] * 10
    assert np.bincount(ds.test.labels).tolist() == [50] * 10
    again = load_dataset("synthetic")
    assert again.fingerprint == ds.fingerprint
    np.testing.assert_array_equal(again.train.images, ds.train.images)


def test_synthetic_is_learnable_by_a_tiny_cnn() -> None:
    ds = load_dataset("synthetic")
    mean, std = channel_stats(ds.train.images)
    cpu = torch.device("cpu")
    train = DeviceLoader(ds.train.images, ds.train.labels, batch_size=50, device=cpu, shuffle=True,
                         mean=mean, std=std)
    test = DeviceLoader(ds.test.images, ds.test.labels, batch_size=500, device=cpu, shuffle=False,
                        mean=mean, std=std)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 24, 5, padding=2, stride=2), torch.nn.ReLU(),
                              torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten(), torch.nn.Linear(24, 10))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for x, y in train.epoch(0):  # one epoch, 40 steps
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        x, y = next(test.epoch(0))
        accuracy = (net(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.9


# ---------------------------------------------------------------------------------------------
# Split and statistics
# ---------------------------------------------------------------------------------------------


def _imageset(counts: list[int]) -> ImageSet:
    labels = np.repeat(np.arange(len(counts)), counts)
    rng = np.random.default_rng(0)
    labels = rng.permutation(labels)
    images = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    return ImageSet(images, labels.astype(np.int64), np.arange(len(labels), dtype=np.int64))


def test_split_is_stratified_disjoint_and_keeps_train_indices() -> None:
    full = _imageset([50, 80, 120, 33, 61])
    train, val = split_train_val(full, 0.2, seed=3)
    assert len(train) + len(val) == len(full)
    assert set(train.index).isdisjoint(val.index) and set(train.index) | set(val.index) == set(range(len(full)))
    for c, n in enumerate([50, 80, 120, 33, 61]):
        assert abs(int((val.labels == c).sum()) - 0.2 * n) <= 1
    for part in (train, val):
        np.testing.assert_array_equal(part.images, full.images[part.index])
        np.testing.assert_array_equal(part.labels, full.labels[part.index])
    # A split of a split still reports positions in the source split.
    sub_train, sub_val = split_train_val(train, 0.25, seed=0)
    np.testing.assert_array_equal(sub_val.images, full.images[sub_val.index])
    assert set(sub_val.index) <= set(train.index)


def test_split_depends_on_the_seed_only() -> None:
    full = _imageset([40] * 4)
    a, b = split_train_val(full, 0.25, seed=1)[1], split_train_val(full, 0.25, seed=1)[1]
    np.testing.assert_array_equal(a.index, b.index)
    assert not np.array_equal(a.index, split_train_val(full, 0.25, seed=2)[1].index)


def test_split_zero_gives_an_empty_val_set_and_bad_fractions_raise() -> None:
    full = _imageset([10, 10])
    train, val = split_train_val(full, 0, seed=0)
    assert train is full and len(val) == 0 and val.images.shape == (0, 32, 32, 3)
    for bad in (-0.1, 0.6, 1.0):
        with pytest.raises(ValueError, match="val_fraction"):
            split_train_val(full, bad, seed=0)


def test_a_dataset_too_small_to_split_is_explained_in_one_sentence() -> None:
    with pytest.raises(DataError) as info:
        split_train_val(_imageset([1, 1, 1, 30]), 0.1, seed=0)
    message = str(info.value)
    one_sentence(message)
    assert message.startswith("The training set (33 pictures in 4 classes, the smallest with 1) is too small")
    assert "add more pictures per class, or set the validation share (val_fraction) to 0" in message


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.5])
def test_the_split_refuses_exactly_what_sklearn_cannot_split(fraction: float) -> None:
    from sklearn.model_selection import train_test_split

    for counts in [*itertools.product(range(1, 5), repeat=2), *itertools.product(range(1, 4), repeat=3), (9, 9, 2), (40, 40)]:
        full = _imageset(list(counts))
        try:
            train_test_split(np.arange(len(full)), test_size=fraction, random_state=0, stratify=full.labels)
        except ValueError:
            with pytest.raises(DataError, match="too small"):
                split_train_val(full, fraction, seed=0)
        else:
            train, val = split_train_val(full, fraction, seed=0)
            assert len(train) + len(val) == len(full), counts


def test_a_constant_colour_channel_normalises_to_zero_instead_of_failing() -> None:
    images = _imageset([10, 10]).images.copy()
    images[..., 2] = 0  # no blue anywhere, as in a dataset of red-green pictures
    mean, std = channel_stats(images)
    assert mean[2] == 0 and std[2] == pytest.approx(1 / 255) and std[0] > 0.2
    gray_std = channel_stats(np.full((4, 32, 32, 3), 90, np.uint8), grayscale=True)[1]
    assert gray_std == pytest.approx((1 / 255,) * 3)
    loader = DeviceLoader(images, np.zeros(20, np.int64), batch_size=8, device="cpu", shuffle=False,
                          mean=mean, std=std)
    x, _ = next(iter(loader.epoch(0)))
    assert torch.isfinite(x).all() and (x[:, 2] == 0).all() and x[:, 0].std() > 0.5


def make_red_green_tree(root: Path, classes: tuple[str, ...]) -> Path:
    """A small folder dataset whose pictures have no blue at all (a constant colour channel)."""
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 10), ("test", 4)):
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                pixels[..., 2] = 0
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")
    return root


def test_a_dataset_without_blue_trains(tmp_path: Path, cache: Path) -> None:
    from tests.helpers import train_tiny_run  # imports the training engine: only this test needs it

    root = make_red_green_tree(tmp_path / "red-green", ("red", "green"))
    result = train_tiny_run(tmp_path / "runs", data=str(root), epochs=1, val_fraction=0.2)
    assert json.loads((result.run_dir / "test_summary.json").read_text())["accuracy"] is not None


def test_channel_stats_match_numpy() -> None:
    images = _imageset([30, 30]).images
    mean, std = channel_stats(images)
    np.testing.assert_allclose(mean, (images / 255).mean((0, 1, 2)), atol=1e-9)
    np.testing.assert_allclose(std, (images / 255).std((0, 1, 2)), atol=1e-9)
    gray_mean, gray_std = channel_stats(images, grayscale=True)
    luma = images.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255
    np.testing.assert_allclose(gray_mean, [luma.mean()] * 3, atol=1e-9)
    np.testing.assert_allclose(gray_std, [luma.std()] * 3, atol=1e-9)
    with pytest.raises(ValueError, match="uint8"):
        channel_stats(images.astype(np.float32))


# ---------------------------------------------------------------------------------------------
# DeviceLoader
# ---------------------------------------------------------------------------------------------

N_IMAGES = 103  # not a multiple of the batch size


@pytest.fixture
def pool() -> tuple[np.ndarray, np.ndarray]:
    """Random images whose label is their own id, so every output can be traced back to its input."""
    images = np.random.default_rng(1).integers(0, 256, (N_IMAGES, 32, 32, 3), dtype=np.uint8)
    return images, np.arange(N_IMAGES)


def _loader(pool: tuple[np.ndarray, np.ndarray], **kwargs: object) -> DeviceLoader:
    # mean 0, std 1/255 makes normalisation the identity, so outputs compare exactly with uint8 inputs.
    settings = dict(batch_size=16, device=torch.device("cpu"), shuffle=True, mean=(0.0,) * 3,
                    std=(1 / 255,) * 3)
    settings.update(kwargs)
    return DeviceLoader(pool[0], pool[1], **settings)  # type: ignore[arg-type]


def _originals(pool: tuple[np.ndarray, np.ndarray], y: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(pool[0][y.numpy()]).permute(0, 3, 1, 2).float()  # (B, 3, 32, 32)


def _epoch(loader: DeviceLoader, epoch: int, start_batch: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(loader.epoch(epoch, start_batch))


def test_loader_shapes_dtypes_and_lengths(pool: tuple[np.ndarray, np.ndarray]) -> None:
    loader = _loader(pool, augment=Augment(cutout=4))
    assert len(loader) == 7 and len(loader.images) == N_IMAGES
    assert loader.images.shape == (N_IMAGES, 3, 32, 32) and loader.images.dtype == torch.uint8
    batches = _epoch(loader, 0)
    assert [len(y) for _, y in batches] == [16] * 6 + [7]
    for x, y in batches:
        assert x.shape == (len(y), 3, 32, 32) and x.dtype == torch.float32 and x.is_contiguous()
        assert y.dtype == torch.int64
    x, _ = next(_loader(pool, channels_last=True, dtype=torch.bfloat16).epoch(0))
    assert x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=torch.channels_last)
    dropped = _loader(pool, drop_last=True)
    assert len(dropped) == 6 and all(len(y) == 16 for _, y in _epoch(dropped, 0))


def test_each_epoch_is_a_permutation_of_all_images(pool: tuple[np.ndarray, np.ndarray]) -> None:
    loader = _loader(pool, augment=Augment(flip="alternating", cutout=8))
    orders = []
    for epoch in range(3):
        ids = torch.cat([y for _, y in _epoch(loader, epoch)])
        assert sorted(ids.tolist()) == list(range(N_IMAGES))
        orders.append(ids.tolist())
    assert orders[0] != orders[1] != orders[2]
    plain = _loader(pool, shuffle=False)
    assert torch.cat([y for _, y in _epoch(plain, 5)]).tolist() == list(range(N_IMAGES))
    x, _ = next(plain.epoch(0))
    assert torch.equal(x, _originals(pool, torch.arange(16))), "no augmentation: the images themselves"


def test_loader_flips_exactly_the_flipped_images(pool: tuple[np.ndarray, np.ndarray]) -> None:
    loader = _loader(pool, augment=Augment(crop_padding=0, flip="random"))
    flipped = 0
    for x, y in _epoch(loader, 0):
        original = _originals(pool, y)
        is_flipped = (x == original.flip(-1)).flatten(1).all(1)  # (B,)
        is_same = (x == original).flatten(1).all(1)  # (B,)
        assert bool((is_flipped ^ is_same).all()), "each image is either mirrored or untouched"
        flipped += int(is_flipped.sum())
    assert 20 < flipped < 83


def _flipped_ids(loader: DeviceLoader, pool: tuple[np.ndarray, np.ndarray], epoch: int) -> set[int]:
    ids = set()
    for x, y in _epoch(loader, epoch):
        mirrored = (x == _originals(pool, y).flip(-1)).flatten(1).all(1)  # (B,)
        ids |= set(y[mirrored].tolist())
    return ids


def test_alternating_flip_flips_the_other_images_next_epoch(pool: tuple[np.ndarray, np.ndarray]) -> None:
    loader = _loader(pool, augment=Augment(crop_padding=0, flip="alternating"))
    epochs = [_flipped_ids(loader, pool, e) for e in range(3)]
    assert 20 < len(epochs[0]) < 83
    assert epochs[1] == set(range(N_IMAGES)) - epochs[0]
    assert epochs[2] == epochs[0]


def test_loader_crops_are_windows_of_the_reflect_padded_images(pool: tuple[np.ndarray, np.ndarray]) -> None:
    loader = _loader(pool, augment=Augment(crop_padding=3, flip="none"))
    for x, y in _epoch(loader, 1)[:3]:
        padded = F.pad(_originals(pool, y), (3, 3, 3, 3), mode="reflect")  # (B, 3, 38, 38)
        windows = torch.stack([padded[:, :, oy:oy + 32, ox:ox + 32] for oy in range(7) for ox in range(7)])
        matches = (windows == x[None]).flatten(2).all(2)  # (49, B)
        assert bool(matches.any(0).all())


def test_loader_cutout_paints_the_mean_colour(pool: tuple[np.ndarray, np.ndarray]) -> None:
    mean = (0.2, 0.4, 0.6)
    loader = _loader(pool, augment=Augment(crop_padding=0, flip="none", cutout=6), mean=mean)
    x, _ = next(loader.epoch(0))
    fill = torch.tensor([round(255 * m) for m in mean], dtype=torch.float32) - torch.tensor(mean) * 255
    painted = torch.isclose(x, fill.view(1, 3, 1, 1), atol=1e-3).all(1).flatten(1).sum(1)  # (B,) mean-colour px
    assert bool(((painted >= 9) & (painted <= 36)).all()), "a 6x6 square, clipped to 3x3 at worst"


def test_batches_are_a_function_of_seed_epoch_and_batch(pool: tuple[np.ndarray, np.ndarray]) -> None:
    augment = Augment(crop_padding=4, flip="alternating", cutout=8)
    full = _epoch(_loader(pool, augment=augment, seed=7), 3)
    again = _epoch(_loader(pool, augment=augment, seed=7), 3)
    resumed = _epoch(_loader(pool, augment=augment, seed=7), 3, start_batch=4)
    for (x1, y1), (x2, y2) in zip(full, again):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert len(resumed) == len(full) - 4
    for (x1, y1), (x2, y2) in zip(full[4:], resumed):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    other = _epoch(_loader(pool, augment=augment, seed=8), 3)
    assert not torch.equal(full[0][1], other[0][1])
    assert _epoch(_loader(pool), 0, start_batch=7) == []


def test_normalize_matches_the_formula_and_grayscale_replicates_luminance() -> None:
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.125)
    loader = DeviceLoader(np.zeros((1, 8, 8, 3), np.uint8), np.zeros(1), batch_size=1, device="cpu",
                          shuffle=False, mean=mean, std=std)
    expected = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(loader.normalize(x), expected)
    torch.testing.assert_close(normalize_images(x, mean, std), expected)
    gray = normalize_images(x, (0.5,) * 3, (0.5,) * 3, grayscale=True)
    luma = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).float() / 255  # (B, H, W)
    for c in range(3):
        torch.testing.assert_close(gray[:, c], (luma - 0.5) / 0.5)
    with pytest.raises(ValueError, match="uint8"):
        loader.normalize(x.float())


def test_loader_rejects_bad_input(pool: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = pool
    with pytest.raises(ValueError, match="uint8"):
        DeviceLoader(images.astype(np.float32), labels, batch_size=4, device="cpu", shuffle=True)
    with pytest.raises(ValueError, match="one label per image"):
        DeviceLoader(images, labels[:-1], batch_size=4, device="cpu", shuffle=True)
    with pytest.raises(ValueError, match="batch_size"):
        DeviceLoader(images, labels, batch_size=0, device="cpu", shuffle=True)
    with pytest.raises(ValueError, match="std"):
        DeviceLoader(images, labels, batch_size=4, device="cpu", shuffle=True, std=(0.5, 0.0, 0.5))
    with pytest.raises(ValueError, match="start_batch"):
        _loader(pool).epoch(0, start_batch=8)


def test_an_empty_split_gives_an_empty_loader() -> None:
    loader = DeviceLoader(np.zeros((0, 32, 32, 3), np.uint8), np.zeros(0, np.int64), batch_size=8,
                          device="cpu", shuffle=True, augment=Augment(flip="alternating"))
    assert len(loader) == 0 and list(loader.epoch(0)) == []


# ---------------------------------------------------------------------------------------------
# Real data (slow: decodes 60,000 JPEGs once per session; skipped when the archive is absent)
# ---------------------------------------------------------------------------------------------


def test_real_cifar10_archive(cifar_jpeg: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = cifar_jpeg
    assert ds.classes == CIFAR10_CLASSES
    assert ds.train.images.shape == (50000, 32, 32, 3) and ds.test.images.shape == (10000, 32, 32, 3)
    assert np.bincount(ds.train.labels).tolist() == [5000] * 10
    assert np.bincount(ds.test.labels).tolist() == [1000] * 10
    mean, _ = channel_stats(ds.train.images)
    np.testing.assert_allclose(mean, (0.491, 0.482, 0.447), atol=0.01)  # the well-known CIFAR-10 means
    _forbid_decoding(monkeypatch)
    again = load_dataset(ds.source)  # CIFAR_CACHE_DIR is still the session cache
    assert again.fingerprint == ds.fingerprint
