"""The decode cache: <data_dir>/cache/<fingerprint>/{train,test}_{images,labels}.npy + meta.json."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.data.sets import Arrays
from core.rundir.files import write_atomically

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR: Path = Path(__file__).resolve().parents[2] / "data"
CACHE_ENV = "CIFAR_CACHE_DIR"
CACHE_VERSION = 2  # bump when decoding changes, so old caches are not reused (2: shared core.data.images decoder)

_ARRAY_FILES = ("train_images", "train_labels", "test_images", "test_labels")


def make_fingerprint(*parts: object) -> str:
    """Short stable hex key of `parts` (and of the cache format version)."""
    digest = hashlib.sha256(repr((CACHE_VERSION, *parts)).encode())
    return digest.hexdigest()[:16]


def cache_dir(fingerprint: str, data_dir: str | Path | None = None) -> Path:
    """The folder that holds (or will hold) the decoded arrays of the source with `fingerprint`."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser() / fingerprint
    return Path(data_dir if data_dir is not None else DEFAULT_DATA_DIR) / "cache" / fingerprint


def _read_cache(folder: Path) -> Arrays | None:
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
    return Arrays(*arrays, classes=tuple(meta["classes"]))


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save given a path would append ".npy" to it
        np.save(f, array, allow_pickle=False)


def write_cache(folder: Path, arrays: Arrays, source: str) -> None:
    """Store `arrays` under `folder`; a cache that cannot be written only costs speed, so it just logs."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in _ARRAY_FILES:
            array = getattr(arrays, name)
            write_atomically(folder / f"{name}.npy", lambda tmp, a=array: _save_npy(tmp, a))
        meta = {"classes": list(arrays.classes), "source": source, "cache_version": CACHE_VERSION,
                "train": int(len(arrays.train_labels)), "test": int(len(arrays.test_labels))}
        write_atomically(folder / "meta.json", lambda tmp: tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8"))
    except OSError as err:
        logger.warning("Could not write the data cache %s (%s); the next load decodes again", folder, err)


def cached(fingerprint: str, data_dir: Path, source: str, build: Callable[[], Arrays]) -> Arrays:
    """The arrays for `fingerprint` from the cache, or built once by `build` and cached."""
    folder = cache_dir(fingerprint, data_dir)
    arrays = _read_cache(folder)
    if arrays is not None:
        logger.info("Data cache hit: %s", folder)
        return arrays
    arrays = build()
    write_cache(folder, arrays, source)
    return arrays
