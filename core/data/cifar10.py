"""The cifar10 source: torchvision's CIFAR10 (downloaded once into data_dir), read into the decode cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.data.cache import cache_dir, cached, make_fingerprint, write_cache
from core.data.sets import LAYOUT_HINT, Arrays, DataError

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

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
    return make_fingerprint("cifar10", str(root.resolve()), stats)


def _read_cifar10(root: Path) -> Arrays:
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
    return Arrays(*arrays, classes=CIFAR10_CLASSES)


def load_cifar10(data_dir: Path) -> tuple[str, Arrays]:
    fingerprint = _cifar10_fingerprint(data_dir)
    if fingerprint is not None:
        return fingerprint, cached(fingerprint, data_dir, "cifar10", lambda: _read_cifar10(data_dir))
    arrays = _read_cifar10(data_dir)  # downloads; afterwards the batch files exist
    fingerprint = _cifar10_fingerprint(data_dir) or make_fingerprint("cifar10", str(data_dir))
    write_cache(cache_dir(fingerprint, data_dir), arrays, "cifar10")
    return fingerprint, arrays
