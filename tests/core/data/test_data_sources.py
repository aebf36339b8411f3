"""core.data's folder and archive sources, hostile and real-world ones included: each loads, or is refused
in one sentence."""
from __future__ import annotations

import io
import json
import os
import tarfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import core.data as data
from core.data import (
    DataError, Dataset, decode_image,
    load_dataset,
)

pytestmark = pytest.mark.usefixtures("torch_single_thread")

from tests.data_trees import (EXPECTED_RGB, TREE_IMAGES, _encode, _expected_colours, make_archive,
                               make_tree, one_sentence)
from tests.helpers import png_declaring


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


def refused(source: Path) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(str(source))
    one_sentence(str(info.value))
    return str(info.value)


@pytest.mark.parametrize("width, height", [(15000, 11000), (100_000, 100_000)])
def test_a_decompression_bomb_in_a_folder_is_refused_from_its_header(tmp_path: Path, cache: Path,
                                                                     width: int, height: int) -> None:
    root = make_tree(tmp_path / "t", n_images=1)
    (root / "train" / "cat" / "bomb.png").write_bytes(png_declaring(width, height, bits=16, colour_type=0))
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
