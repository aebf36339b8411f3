"""Folder and archive sources in ImageFolder layout, read in memory (never extracted), every image through
core.data.images, names that are not UTF-8 made readable."""
from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from core.data.cache import cached, make_fingerprint
from core.data.images import ImageError, Policy, decode
from core.data.sets import LAYOUT_HINT, SOURCES_HINT, Arrays, DataError

logger = logging.getLogger(__name__)

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


def _is_image_member(name: str) -> bool:
    """An image file that is not hidden and not macOS metadata (archive member or relative path)."""
    parts = name.replace("\\", "/").strip("/").split("/")
    if any(part.startswith(".") or part == "__MACOSX" for part in parts):
        return False
    return name.lower().endswith(IMAGE_SUFFIXES)


def _is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def load_path(path: Path, data_dir: Path) -> tuple[str, Arrays]:
    """A folder or archive source: fingerprint it cheaply, decode only on a cache miss."""
    if not path.exists():
        raise DataError(f"Data source '{path}' does not exist; pass {SOURCES_HINT}.")
    if path.is_dir():
        fingerprint = _folder_fingerprint(path)
    elif path.is_file() and _is_archive(path):
        st = path.stat()
        fingerprint = make_fingerprint("archive", str(path.resolve()), st.st_size, st.st_mtime_ns)
    else:
        raise DataError(
            f"Data source '{path}' is neither a folder nor a .tar.gz/.tgz/.zip archive; pass {SOURCES_HINT}."
        )
    return fingerprint, cached(fingerprint, data_dir, str(path), lambda: _decode_source(path))


def _folder_fingerprint(root: Path) -> str:
    """Key of a folder's image files: relative paths, sizes and mtimes (contents are not read)."""
    digest = hashlib.sha256()
    for rel, path in _walk_images(root):
        st = path.stat()
        # The name's bytes as on disk (surrogateescape): two spellings of a name are two different files.
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return make_fingerprint("folder", digest.hexdigest())


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


def _decode_source(path: Path) -> Arrays:
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


def _assemble(path: Path, records: Sequence[tuple[str, str, str, str]], images: list[np.ndarray]) -> Arrays:
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
    return Arrays(*out, classes=tuple(class_names))
