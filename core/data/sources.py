"""`load_dataset(source)`: a data source by name or path, through the decode cache, as a Dataset."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from core.data import cache
from core.data.cache import make_fingerprint
from core.data.cifar10 import load_cifar10
from core.data.folders import load_path
from core.data.sets import SOURCES_HINT, DataError, Dataset, image_set
from core.data.synthetic import SYNTHETIC_VERSION, make_synthetic

logger = logging.getLogger(__name__)


def load_dataset(source: str = "cifar10", data_dir: str | Path | None = None) -> Dataset:
    """Load `source` ("cifar10", "synthetic", or a folder/archive path) as uint8 arrays, using the cache.

    Raises DataError with one actionable sentence when the source cannot be used.
    """
    if not isinstance(source, str) or not source.strip():
        raise DataError(f"Data source {source!r} is empty; pass {SOURCES_HINT}.")
    data_dir = Path(data_dir).expanduser() if data_dir is not None else cache.DEFAULT_DATA_DIR
    key = source.strip()
    start = time.perf_counter()
    if key.lower() == "synthetic":
        fingerprint, arrays = make_fingerprint("synthetic", SYNTHETIC_VERSION), make_synthetic()
    elif key.lower() == "cifar10":
        fingerprint, arrays = load_cifar10(data_dir)
    else:
        fingerprint, arrays = load_path(Path(key).expanduser(), data_dir)
    logger.info(
        "Loaded %s (%d train, %d test, %d classes) in %.2f s",
        source, len(arrays.train_labels), len(arrays.test_labels), len(arrays.classes),
        time.perf_counter() - start,
    )
    return Dataset(
        train=image_set(arrays.train_images, arrays.train_labels),
        test=image_set(arrays.test_images, arrays.test_labels),
        classes=tuple(arrays.classes),
        source=source,
        fingerprint=fingerprint,
    )
