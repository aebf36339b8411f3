"""Where the images come from: data sources, the decode cache, the validation split and DeviceLoader.

`load_dataset(source)` turns one of three sources into a `Dataset` of uint8 arrays:

- "cifar10": torchvision's CIFAR10(download=True) into `data_dir` (default `<repo>/data`);
- "synthetic": a small generated 10-class set (coloured shapes) for tests and offline smoke runs;
- a folder or .tar.gz/.tgz/.zip archive in ImageFolder layout (`train/<class>/*`, `test/<class>/*`).

Every image file goes through `core.images`, the decoder uploads use too (the pixel cap read from
the header, any mode made RGB, squashed to 32x32), and file and class names that are not UTF-8 are
made readable (`readable_name`). Folders, archives and CIFAR-10 are decoded once and cached as
plain .npy files under `<data_dir>/cache/<fingerprint>/` (or `$CIFAR_CACHE_DIR/<fingerprint>/`), so
later loads take well under a second. `split_train_val` carves a stratified validation set out of
train, `channel_stats` gives the normalisation constants, and `DeviceLoader` keeps a whole split on
the device as uint8 and serves shuffled, augmented, normalised batches from there.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import tarfile
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from core import augment as aug
from core.augment import Augment
from core.images import IMAGE_SIZE, ImageError, Policy, decode

logger = logging.getLogger(__name__)

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
DEFAULT_DATA_DIR: Path = Path(__file__).resolve().parents[1] / "data"
CACHE_ENV = "CIFAR_CACHE_DIR"
CACHE_VERSION = 2  # bump when decoding changes, so old caches are not reused (2: shared core.images decoder)
SPLITS = ("train", "test")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
DATASET_IMAGES = Policy(
    formats=("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF", "PPM"),  # the decoders of IMAGE_SUFFIXES, no others
    unreadable="remove it or save it as PNG or JPEG",
    damaged="remove it or replace it with an undamaged copy",
    no_pixels="remove it",
)
MAX_MEMBER_BYTES = 256 * 2**20  # refuse absurd archive members (zip bombs) before reading them
LAYOUT_HINT = "ImageFolder layout (train/<class>/*, test/<class>/*)"
SOURCES_HINT = f"'cifar10', 'synthetic', or a folder or .tar.gz/.tgz/.zip archive in {LAYOUT_HINT}"
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 luminance weights for the grayscale option
# One grey level: uint8 pixels cannot spread less, so a smaller std means a constant channel. Its
# normalised value is 0 on every training picture whatever the floor; one level keeps ordinary data untouched.
MIN_STD = 1 / 255


class DataError(ValueError):
    """A data source that cannot be used; the message says what was wrong and what is allowed."""


# ---------------------------------------------------------------------------------------------
# Containers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ImageSet:
    """One split: images with their labels and their position in the source split."""

    images: np.ndarray  # (N, 32, 32, 3) uint8 RGB
    labels: np.ndarray  # (N,) int64 class index
    index: np.ndarray  # (N,) int64 position in the source split (a val image's index is its train index)

    def __post_init__(self) -> None:
        if not len(self.images) == len(self.labels) == len(self.index):
            raise ValueError(
                f"ImageSet needs as many labels and indices as images; got {len(self.images)} images, "
                f"{len(self.labels)} labels and {len(self.index)} indices."
            )

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, positions: np.ndarray) -> ImageSet:
        """The subset at `positions` (positions in this set, not source indices)."""
        return ImageSet(self.images[positions], self.labels[positions], self.index[positions])


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded source: train and test splits plus what identifies them."""

    train: ImageSet
    test: ImageSet
    classes: tuple[str, ...]
    source: str  # as given by the user
    fingerprint: str  # short hex key of the source's content/identity (names the cache folder)


class _Arrays(NamedTuple):
    """Decoded arrays of a source, the unit that is cached."""

    train_images: np.ndarray  # (N, 32, 32, 3) uint8
    train_labels: np.ndarray  # (N,) int64
    test_images: np.ndarray  # (M, 32, 32, 3) uint8
    test_labels: np.ndarray  # (M,) int64
    classes: tuple[str, ...]


def _image_set(images: np.ndarray, labels: np.ndarray) -> ImageSet:
    return ImageSet(images, labels.astype(np.int64, copy=False), np.arange(len(labels), dtype=np.int64))


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def load_dataset(source: str = "cifar10", data_dir: str | Path | None = None) -> Dataset:
    """Load `source` ("cifar10", "synthetic", or a folder/archive path) as uint8 arrays, using the cache.

    Raises DataError with one actionable sentence when the source cannot be used.
    """
    if not isinstance(source, str) or not source.strip():
        raise DataError(f"Data source {source!r} is empty; pass {SOURCES_HINT}.")
    data_dir = Path(data_dir).expanduser() if data_dir is not None else DEFAULT_DATA_DIR
    key = source.strip()
    start = time.perf_counter()
    if key.lower() == "synthetic":
        fingerprint, arrays = _fingerprint("synthetic", SYNTHETIC_VERSION), _make_synthetic()
    elif key.lower() == "cifar10":
        fingerprint, arrays = _load_cifar10(data_dir)
    else:
        fingerprint, arrays = _load_path(Path(key).expanduser(), data_dir)
    logger.info(
        "Loaded %s (%d train, %d test, %d classes) in %.2f s",
        source, len(arrays.train_labels), len(arrays.test_labels), len(arrays.classes),
        time.perf_counter() - start,
    )
    return Dataset(
        train=_image_set(arrays.train_images, arrays.train_labels),
        test=_image_set(arrays.test_images, arrays.test_labels),
        classes=tuple(arrays.classes),
        source=source,
        fingerprint=fingerprint,
    )


# ---------------------------------------------------------------------------------------------
# Cache: <data_dir>/cache/<fingerprint>/{train,test}_{images,labels}.npy + meta.json
# ---------------------------------------------------------------------------------------------

_ARRAY_FILES = ("train_images", "train_labels", "test_images", "test_labels")


def _fingerprint(*parts: object) -> str:
    """Short stable hex key of `parts` (and of the cache format version)."""
    digest = hashlib.sha256(repr((CACHE_VERSION, *parts)).encode())
    return digest.hexdigest()[:16]


def cache_dir(fingerprint: str, data_dir: str | Path | None = None) -> Path:
    """The folder that holds (or will hold) the decoded arrays of the source with `fingerprint`."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser() / fingerprint
    return Path(data_dir if data_dir is not None else DEFAULT_DATA_DIR) / "cache" / fingerprint


def _read_cache(folder: Path) -> _Arrays | None:
    """The cached arrays, or None when absent or unreadable; meta.json is written last, so it marks completeness."""
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        arrays = [np.load(folder / f"{name}.npy", allow_pickle=False) for name in _ARRAY_FILES]
    except (OSError, ValueError, EOFError, KeyError) as err:
        logger.warning("Ignoring unreadable cache %s (%s); decoding again", folder, err)
        return None
    return _Arrays(*arrays, classes=tuple(meta["classes"]))


def _atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write through a unique temporary name then rename, so readers never see a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_cache(folder: Path, arrays: _Arrays, source: str) -> None:
    """Store `arrays` under `folder`; a cache that cannot be written only costs speed, so it just logs."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in _ARRAY_FILES:
            array = getattr(arrays, name)
            _atomic_write(folder / f"{name}.npy", lambda f, a=array: np.save(f, a, allow_pickle=False))
        meta = {"classes": list(arrays.classes), "source": source, "cache_version": CACHE_VERSION,
                "train": int(len(arrays.train_labels)), "test": int(len(arrays.test_labels))}
        _atomic_write(folder / "meta.json", lambda f: f.write(json.dumps(meta, indent=1).encode()))
    except OSError as err:
        logger.warning("Could not write the data cache %s (%s); the next load decodes again", folder, err)


def _cached(fingerprint: str, data_dir: Path, source: str, build: Callable[[], _Arrays]) -> _Arrays:
    """The arrays for `fingerprint` from the cache, or built once by `build` and cached."""
    folder = cache_dir(fingerprint, data_dir)
    arrays = _read_cache(folder)
    if arrays is not None:
        logger.info("Data cache hit: %s", folder)
        return arrays
    arrays = build()
    _write_cache(folder, arrays, source)
    return arrays


# ---------------------------------------------------------------------------------------------
# Source: synthetic coloured shapes
# ---------------------------------------------------------------------------------------------

SYNTHETIC_VERSION = 1
SYNTHETIC_TRAIN_PER_CLASS, SYNTHETIC_TEST_PER_CLASS = 200, 50
SYNTHETIC_CLASSES: tuple[str, ...] = (
    "red-square", "orange-disc", "yellow-triangle", "green-plus", "cyan-ring",
    "blue-hstripes", "purple-vstripes", "pink-diamond", "white-checker", "brown-x",
)
_SYNTHETIC_COLOURS = np.array([
    (220, 40, 40), (240, 140, 20), (230, 220, 40), (40, 180, 60), (40, 200, 210),
    (40, 80, 220), (140, 60, 200), (240, 110, 180), (235, 235, 235), (140, 90, 40),
], dtype=np.float32)


def _shape_mask(label: int, dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Pixels inside class `label`'s shape; dy, dx (n, 32, 32) offsets from the centre, r (n, 1, 1) radius."""
    ay, ax = np.abs(dy), np.abs(dx)
    box = (ay <= r) & (ax <= r)
    if label in (1, 4):
        dist = np.hypot(dy, dx)
        return (dist <= r) & (dist >= 0.55 * r) if label == 4 else dist <= r  # ring / disc
    stripes_y, stripes_x = ((dy + r) // 3) % 2 == 0, ((dx + r) // 3) % 2 == 0  # 3 px bands
    masks = {
        0: lambda: box,
        2: lambda: (ay <= r) & (ax <= (dy + r) / 2),  # triangle pointing up
        3: lambda: ((ax <= r / 3) & (ay <= r)) | ((ay <= r / 3) & (ax <= r)),
        5: lambda: box & stripes_y,
        6: lambda: box & stripes_x,
        7: lambda: ax + ay <= r,
        8: lambda: box & (stripes_x == stripes_y),
        9: lambda: box & (np.abs(ax - ay) <= 1.5),
    }
    return masks[label]()


def _synthetic_split(rng: np.random.Generator, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` images of each class in random order: dark noisy background, class colour + shape."""
    labels = rng.permutation(np.repeat(np.arange(len(SYNTHETIC_CLASSES)), per_class))  # (n,)
    n = len(labels)
    r = rng.uniform(6.0, 10.0, size=(n, 1, 1)).astype(np.float32)  # shape radius in px
    cy = rng.uniform(r, IMAGE_SIZE - 1 - r).astype(np.float32)  # (n, 1, 1) random position
    cx = rng.uniform(r, IMAGE_SIZE - 1 - r).astype(np.float32)
    grid = np.arange(IMAGE_SIZE, dtype=np.float32)
    dy, dx = grid[None, :, None] - cy, grid[None, None, :] - cx  # (n, 32, 1), (n, 1, 32)
    dy, dx = np.broadcast_arrays(dy, dx)  # (n, 32, 32) each
    inside = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    for label in range(len(SYNTHETIC_CLASSES)):  # a loop over classes, not images
        rows = labels == label
        inside[rows] = _shape_mask(label, dy[rows], dx[rows], r[rows])
    background = rng.uniform(0, 90, size=(n, 1, 1, 3)).astype(np.float32)  # (n, 1, 1, 3)
    jitter = rng.standard_normal((n, 1, 1, 3), dtype=np.float32) * 15  # per-image colour shift
    colour = _SYNTHETIC_COLOURS[labels][:, None, None, :] + jitter  # (n, 1, 1, 3)
    images = np.where(inside[..., None], colour, background)  # (n, 32, 32, 3) float32
    images += rng.standard_normal(images.shape, dtype=np.float32) * 12  # pixel noise
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)


def _make_synthetic(seed: int = 0) -> _Arrays:
    """The synthetic set: 2,000 train / 500 test images, 10 balanced classes, deterministic for a seed."""
    rng = np.random.default_rng([SYNTHETIC_VERSION, seed])
    train_images, train_labels = _synthetic_split(rng, SYNTHETIC_TRAIN_PER_CLASS)
    test_images, test_labels = _synthetic_split(rng, SYNTHETIC_TEST_PER_CLASS)
    return _Arrays(train_images, train_labels, test_images, test_labels, SYNTHETIC_CLASSES)


# ---------------------------------------------------------------------------------------------
# Source: CIFAR-10 through torchvision
# ---------------------------------------------------------------------------------------------

_CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                  "test_batch", "batches.meta")


def _cifar10_fingerprint(root: Path) -> str | None:
    """Key of torchvision's extracted batch files (names, sizes, mtimes), or None when any is missing."""
    stats = []
    for name in _CIFAR10_FILES:
        path = root / _CIFAR10_FOLDER / name
        if not path.is_file():
            return None
        st = path.stat()
        stats.append((name, st.st_size, st.st_mtime_ns))
    return _fingerprint("cifar10", str(root.resolve()), stats)


def _read_cifar10(root: Path) -> _Arrays:
    """Both CIFAR-10 splits through torchvision, downloading into `root` when they are not there yet."""
    from torchvision import datasets  # lazy: importing torchvision is slow and only this source needs it

    try:
        splits = [datasets.CIFAR10(root=str(root), train=train, download=True) for train in (True, False)]
    except Exception as err:  # torchvision raises URLError, RuntimeError, OSError... for the same cause
        raise DataError(
            f"CIFAR-10 was not found in {root} and could not be downloaded ({type(err).__name__}: {err}); "
            f"connect to the internet so torchvision can download it into {root}, or pass --data with a "
            f"folder or .tar.gz/.zip archive in {LAYOUT_HINT}."
        ) from err
    arrays = []
    for split in splits:
        arrays += [np.ascontiguousarray(split.data, dtype=np.uint8), np.asarray(split.targets, dtype=np.int64)]
    return _Arrays(*arrays, classes=CIFAR10_CLASSES)


def _load_cifar10(data_dir: Path) -> tuple[str, _Arrays]:
    fingerprint = _cifar10_fingerprint(data_dir)
    if fingerprint is not None:
        return fingerprint, _cached(fingerprint, data_dir, "cifar10", lambda: _read_cifar10(data_dir))
    arrays = _read_cifar10(data_dir)  # downloads; afterwards the batch files exist
    fingerprint = _cifar10_fingerprint(data_dir) or _fingerprint("cifar10", str(data_dir))
    _write_cache(cache_dir(fingerprint, data_dir), arrays, "cifar10")
    return fingerprint, arrays


# ---------------------------------------------------------------------------------------------
# Source: ImageFolder folder or archive (read in memory, never extracted)
# ---------------------------------------------------------------------------------------------


def _is_image_member(name: str) -> bool:
    """An image file that is not hidden and not macOS metadata (archive member or relative path)."""
    parts = name.replace("\\", "/").strip("/").split("/")
    if any(part.startswith(".") or part == "__MACOSX" for part in parts):
        return False
    return name.lower().endswith(IMAGE_SUFFIXES)


def _is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _load_path(path: Path, data_dir: Path) -> tuple[str, _Arrays]:
    """A folder or archive source: fingerprint it cheaply, decode only on a cache miss."""
    if not path.exists():
        raise DataError(f"Data source '{path}' does not exist; pass {SOURCES_HINT}.")
    if path.is_dir():
        fingerprint = _folder_fingerprint(path)
    elif path.is_file() and _is_archive(path):
        st = path.stat()
        fingerprint = _fingerprint("archive", str(path.resolve()), st.st_size, st.st_mtime_ns)
    else:
        raise DataError(
            f"Data source '{path}' is neither a folder nor a .tar.gz/.tgz/.zip archive; pass {SOURCES_HINT}."
        )
    return fingerprint, _cached(fingerprint, data_dir, str(path), lambda: _decode_source(path))


def _folder_fingerprint(root: Path) -> str:
    """Key of a folder's image files: relative paths, sizes and mtimes (contents are not read)."""
    digest = hashlib.sha256()
    for rel, path in _walk_images(root):
        st = path.stat()
        # The name's bytes as on disk (surrogateescape): two spellings of a name are two different files.
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return _fingerprint("folder", digest.hexdigest())


def _walk_images(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, path) of every image file under `root`, in sorted order, skipping hidden dirs."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if _is_image_member(rel) and path.is_file():
                yield rel, path


def readable_name(name: str) -> str:
    """A file name as text that every page, JSON file and UTF-8 encoder accepts; class names come from it.

    Folders and tar archives give names as the bytes on disk, and Python keeps bytes that are not
    UTF-8 as lone surrogates ('caf\\udce9'), which crash a page or a JSON writer long after training.
    Such a path part is decoded as Latin-1 rather than refused: every byte string is valid Latin-1,
    so the data still loads; names from old Western European systems, the usual source of these
    bytes, come out right ('café'); and each part is decoded on its own, so one oddly named file
    cannot rename its class folder. Zip names are already text (zipfile decodes them) and pass as is.
    """
    parts = name.encode("utf-8", "surrogateescape").split(b"/")
    return "/".join(_decode_name_part(part) for part in parts)


def _decode_name_part(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _folder_members(root: Path) -> Iterator[tuple[str, bytes]]:
    for rel, path in _walk_images(root):
        yield readable_name(rel), path.read_bytes()


def _tar_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """Image members of a tar archive as (name, bytes), streamed; links and special files are skipped."""
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            if member.isfile() and _is_image_member(member.name):
                name = readable_name(member.name)
                _check_member_size(path, name, member.size)
                yield name, archive.extractfile(member).read()


def _zip_members(path: Path) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.is_dir() and _is_image_member(info.filename):
                name = readable_name(info.filename)
                _check_member_size(path, name, info.file_size)
                yield name, _read_zip_member(archive, info, name, path)


def _read_zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, path: Path) -> bytes:
    """A zip member's bytes; password protection and compression methods zipfile lacks get one sentence."""
    if info.flag_bits & 0x1:  # the zip format's "encrypted" flag; zipfile would raise a bare RuntimeError
        raise DataError(
            f"Archive member '{name}' in {path} is encrypted (password-protected); pass an archive made "
            f"without a password."
        )
    try:
        return archive.read(info)
    except NotImplementedError:  # zipfile's signal for a compression method it cannot decompress
        raise DataError(
            f"Archive member '{name}' in {path} uses a compression method this program cannot read "
            f"(method {info.compress_type}); re-create the archive with ordinary zip (deflate) compression."
        ) from None


def _check_member_size(path: Path, name: str, size: int) -> None:
    if size > MAX_MEMBER_BYTES:
        raise DataError(
            f"Archive member '{name}' in {path} is {size / 2**20:.0f} MiB; image files must be under "
            f"{MAX_MEMBER_BYTES // 2**20} MiB."
        )


def _split_member(name: str) -> tuple[str, str, str] | None:
    """(prefix, split, class) of `name` = [prefix/]train|test/<class>/.../file, or None for other files."""
    parts = name.replace("\\", "/").strip("/").split("/")
    for i, part in enumerate(parts[:-2]):
        if part in SPLITS:
            return "/".join(parts[:i]), part, parts[i + 1]
    return None


def decode_image(data: bytes, name: str, path: Path) -> np.ndarray:
    """A dataset image's bytes -> (32, 32, 3) uint8 RGB, squashed, through the decoder uploads use too.

    Over the pixel cap (read from the header, before decoding), unreadable or damaged: one sentence
    naming the member and the source.
    """
    try:
        return decode(data, f"Image '{name}' in {path}", DATASET_IMAGES)
    except ImageError as err:
        raise DataError(str(err)) from None


def _decode_source(path: Path) -> _Arrays:
    """Decode every image of a folder or archive (the slow part, done once per fingerprint)."""
    start = time.perf_counter()
    if path.is_dir():
        members = _folder_members(path)
    elif path.name.lower().endswith(".zip"):
        members = _zip_members(path)
    else:
        members = _tar_members(path)
    records: list[tuple[str, str, str, str]] = []  # (prefix, split, class, name) per decoded image
    images: list[np.ndarray] = []
    try:
        for name, data in members:
            where = _split_member(name)
            if where is None:
                continue  # an image outside train/ and test/ (a preview, a logo): not part of the data
            images.append(decode_image(data, name, path))
            records.append((*where, name))
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as err:
        raise DataError(
            f"Could not read {path} ({type(err).__name__}: {err}); pass a readable folder or a valid .tar.gz, "
            f".tgz or .zip file."
        ) from err
    arrays = _assemble(path, records, images)
    logger.info("Decoded %d images from %s in %.1f s", len(images), path, time.perf_counter() - start)
    return arrays


def _assemble(path: Path, records: Sequence[tuple[str, str, str, str]], images: list[np.ndarray]) -> _Arrays:
    """Check the layout and stack the decoded images per split, sorted by (class, file name)."""
    prefixes = sorted({prefix for prefix, *_ in records})
    if len(prefixes) > 1:
        roots = ", ".join(f"'{p or '.'}'" for p in prefixes[:3])
        raise DataError(f"{path} holds several train/test trees ({roots}); keep exactly one {LAYOUT_HINT}.")
    classes = {split: sorted({cls for _, s, cls, _ in records if s == split}) for split in SPLITS}
    for split in SPLITS:
        if not classes[split]:
            raise DataError(f"{path} has no images under {split}/<class>/; it must be in {LAYOUT_HINT}.")
    if classes["train"] != classes["test"]:
        only_train = sorted(set(classes["train"]) - set(classes["test"]))
        only_test = sorted(set(classes["test"]) - set(classes["train"]))
        raise DataError(
            f"{path} has different classes in train/ and test/ (only in train: {only_train or 'none'}, "
            f"only in test: {only_test or 'none'}); both splits must have the same class folders."
        )
    class_names = classes["train"]
    if len(class_names) < 2:
        raise DataError(f"{path} has only the class {class_names}; a classifier needs at least 2 class folders.")
    label_of = {name: i for i, name in enumerate(class_names)}
    out = []
    for split in SPLITS:
        rows = sorted((label_of[cls], name, i) for i, (_, s, cls, name) in enumerate(records) if s == split)
        out += [np.stack([images[i] for *_, i in rows]), np.array([label for label, *_ in rows], dtype=np.int64)]
    return _Arrays(*out, classes=tuple(class_names))


# ---------------------------------------------------------------------------------------------
# Validation split and normalisation statistics
# ---------------------------------------------------------------------------------------------


def split_train_val(train: ImageSet, val_fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Stratified (train, val) split of the training set; `index` keeps each image's train position."""
    if not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction <= 0.5:
        raise ValueError(f"val_fraction={val_fraction!r} is invalid; use a number from 0 to 0.5.")
    if val_fraction == 0 or len(train) == 0:
        return train, train.take(np.arange(0))
    _check_splittable(train.labels, val_fraction)
    from sklearn.model_selection import train_test_split  # lazy: sklearn import is slow

    keep, val = train_test_split(
        np.arange(len(train)), test_size=val_fraction, random_state=seed, stratify=train.labels
    )
    # Sorted positions keep both subsets in source order; the loader shuffles anyway.
    return train.take(np.sort(keep)), train.take(np.sort(val))


def _check_splittable(labels: np.ndarray, val_fraction: float) -> None:
    """DataError unless a stratified split of `labels` exists: sklearn's own conditions, in one user sentence.

    train_test_split(stratify=...) needs every class twice and as many pictures as classes on each
    side, with ceil(val_fraction * n) pictures held back; its messages are several sentences about "y".
    """
    counts = np.bincount(labels)
    counts = counts[counts > 0]  # (classes present,)
    n, n_classes = len(labels), len(counts)
    n_val = math.ceil(val_fraction * n)
    if counts.min() >= 2 and min(n_val, n - n_val) >= n_classes:
        return
    raise DataError(
        f"The training set ({n} pictures in {n_classes} classes, the smallest with {counts.min()}) is too small "
        f"to hold back a stratified {val_fraction:.0%} validation set, which needs at least 2 pictures of every "
        f"class and a picture of every class on each side; add more pictures per class, or set the validation "
        f"share (val_fraction) to 0."
    )


def channel_stats(
    images: np.ndarray, *, grayscale: bool = False
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std in [0, 1] units of (N, H, W, 3) uint8 images (of luminance when grayscale).

    A std is never below MIN_STD, so a constant channel (a dataset with no blue, or all-grey pictures)
    still normalises, to 0, instead of dividing by zero.
    """
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(images) == 0:
        raise ValueError(
            f"channel_stats needs a non-empty (N, H, W, 3) uint8 array; got shape {images.shape} {images.dtype}."
        )
    if grayscale:
        total = total_sq = 0.0
        for start in range(0, len(images), 4096):  # chunks keep the float copy small
            lum = images[start:start + 4096].astype(np.float64) @ np.array(LUMA) / 255  # (n, H, W)
            total, total_sq = total + lum.sum(), total_sq + np.square(lum).sum()
        count = images[..., 0].size
        mean = float(total / count)
        std = max(float(np.sqrt(max(total_sq / count - mean**2, 0.0))), MIN_STD)
        return (mean,) * 3, (std,) * 3
    means, stds = [], []
    values = np.arange(256, dtype=np.float64) / 255
    for c in range(3):
        counts = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)  # exact histogram
        mean = counts @ values / counts.sum()
        means.append(float(mean))
        stds.append(max(float(np.sqrt(max(counts @ values**2 / counts.sum() - mean**2, 0.0))), MIN_STD))
    return tuple(means), tuple(stds)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Normalisation and DeviceLoader
# ---------------------------------------------------------------------------------------------


def _check_stats(mean: Sequence[float], std: Sequence[float]) -> None:
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"mean={tuple(mean)} and std={tuple(std)} are invalid; give 3 values each, std > 0.")


class Normalizer:
    """uint8 (B, 3, H, W) -> float normalised with the training mean and std, on `device`.

    The scale and shift tensors are made once, on the device: building them per batch from Python
    numbers would copy them from the host, and wait for it, every batch. The training loader, the
    evaluation and the dashboard's predictions each hold one of these.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], *, device: torch.device | str,
                 grayscale: bool = False, dtype: torch.dtype = torch.float32, channels_last: bool = False):
        _check_stats(mean, std)
        self.grayscale, self.dtype = grayscale, dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.scale, self.shift = 1 / (255 * s), -m / s  # x * scale + shift == (x / 255 - mean) / std

    def __call__(self, x: Tensor) -> Tensor:
        """Optional luminance, then x * scale + shift in float32, then cast (and channels_last if asked)."""
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"normalize needs a (B, 3, H, W) uint8 tensor; got {tuple(x.shape)} {x.dtype}.")
        x = x.to(self.scale.device)
        if self.grayscale:
            x = x.float()  # (B, 3, H, W)
            r, g, b = LUMA
            luma = x[:, 0:1] * r + x[:, 1:2] * g + x[:, 2:3] * b  # (B, 1, H, W)
            x = luma * self.scale + self.shift  # (B, 3, H, W): 3 equal channels so every model works unchanged
        else:
            # One pass converts and lays out; in-place maths after (addcmul with broadcasting is slow on CPU).
            x = x.to(torch.float32, memory_format=self.memory_format).mul_(self.scale).add_(self.shift)
        return x.to(dtype=self.dtype, memory_format=self.memory_format)


def normalize_images(
    x_uint8: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    grayscale: bool = False,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> Tensor:
    """(B, 3, H, W) uint8 -> normalised float on x's device, once (a Normalizer when there are more batches)."""
    return Normalizer(mean, std, device=x_uint8.device, grayscale=grayscale, dtype=dtype,
                      channels_last=channels_last)(x_uint8)


def _as_tensor(array: np.ndarray | Tensor) -> Tensor:
    """A tensor view of `array` (copied only when numpy marks it read-only, which torch cannot share)."""
    if isinstance(array, Tensor):
        return array
    array = np.asarray(array)
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def _seed(*key: object) -> int:
    """A 63-bit seed that is a pure function of `key` (stable across processes, unlike hash())."""
    return int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:8], "little") & (2**63 - 1)


class DeviceLoader:
    """Whole split resident on `device` as uint8; shuffles and augments there, no per-image Python.

    Train: `DeviceLoader(x, y, batch_size=..., device=..., shuffle=True, augment=Augment(...))`;
    eval: `shuffle=False, augment=None` yields the images in order. Batches of epoch e, batch b depend
    only on (seed, e, b), so `epoch(e, start_batch=k)` resumes mid-epoch exactly.
    Public attributes: `images` (N, 3, H, W) uint8 and `labels` (N,) int64, both on `device`, and
    `normalize`, the Normalizer its batches go through (the engine evaluates with the same one).
    """

    def __init__(
        self,
        images: np.ndarray | Tensor,
        labels: np.ndarray | Tensor,
        *,
        batch_size: int,
        device: torch.device | str,
        shuffle: bool,
        augment: Augment | None = None,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        grayscale: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        images, labels = _as_tensor(images), _as_tensor(labels)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"DeviceLoader needs (N, H, W, 3) uint8 images; got {tuple(images.shape)} {images.dtype}."
            )
        if len(labels) != len(images):
            raise ValueError(
                f"DeviceLoader got {len(images)} images but {len(labels)} labels; give one label per image."
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} is invalid; use a positive integer.")
        self.device = torch.device(device)
        # Checks mean and std before anything is copied to the device.
        self.normalize = Normalizer(mean, std, device=self.device, grayscale=grayscale, dtype=dtype,
                                    channels_last=channels_last)  # (B, 3, H, W) uint8 -> normalised `dtype`
        self.images = images.to(self.device).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W) uint8
        self.labels = labels.to(self.device, torch.int64)  # (N,)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.augment = augment if augment is not None and augment.active else None
        self.drop_last = drop_last
        # Cutout paints the mean colour, which normalises to 0 (as in the Cutout paper).
        self._fill = torch.tensor([round(255 * m) for m in mean], device=self.device).clamp(0, 255).to(torch.uint8)
        self._flip_base = None  # per-image base coins for alternating flips, fixed for the whole run
        if self.augment is not None and self.augment.flip == "alternating":
            self._flip_base = aug.flip_mask(len(self.images), 0, "alternating", self._generator("flip-base"))

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def num_images(self) -> int:
        return len(self.images)

    def _generator(self, *key: object) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        generator.manual_seed(_seed(self.seed, *key))
        return generator

    def _order(self, epoch: int) -> Tensor | None:
        """This epoch's permutation (N,), or None when not shuffling (batches are then plain slices)."""
        if not self.shuffle:
            return None
        return torch.randperm(len(self.images), generator=self._generator("perm", epoch), device=self.device)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield (x (B, 3, H, W) float normalised, y (B,) int64) on the device for batches start_batch.. of `epoch`."""
        if not isinstance(start_batch, int) or not 0 <= start_batch <= len(self):
            raise ValueError(f"start_batch={start_batch!r} is invalid; use 0 to {len(self)} (batches per epoch).")
        return self._batches(epoch, start_batch)

    def _batches(self, epoch: int, start_batch: int) -> Iterator[tuple[Tensor, Tensor]]:
        order = self._order(epoch)
        for b in range(start_batch, len(self)):
            window = slice(b * self.batch_size, (b + 1) * self.batch_size)
            idx = order[window] if order is not None else window  # (B,) or a slice
            x = self.images[idx]  # (B, 3, H, W) uint8
            if self.augment is not None:
                flip_base = self._flip_base[idx] if self._flip_base is not None else None  # (B,)
                x = aug.apply(x, self.augment, epoch, self._generator("batch", epoch, b),
                              flip_base=flip_base, fill=self._fill)
            yield self.normalize(x), self.labels[idx]
