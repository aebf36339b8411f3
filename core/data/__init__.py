"""Where the images come from: data sources, the decode cache, the validation split and the device loader.

`load_dataset(source)` turns one of three sources into a `Dataset` of uint8 arrays:

- "cifar10": torchvision's CIFAR10(download=True) into `data_dir` (default `<repo>/data`);
- "synthetic": a small generated 10-class set (coloured shapes) for tests and offline smoke runs;
- a folder or .tar.gz/.tgz/.zip archive in ImageFolder layout (`train/<class>/*`, `test/<class>/*`).

Modules, one job each: `sources` (load_dataset), `sets` (Dataset, ImageSet, DataError), `cache` (the
decoded arrays as .npy files under `<data_dir>/cache/<fingerprint>/` or `$CIFAR_CACHE_DIR`, so later
loads take well under a second), `synthetic`, `cifar10` and `folders` (the three sources; every image
file goes through `core.data.images`, the decoder uploads use too), `split` (a stratified validation split
and the normalisation statistics), `per_class` (pictures per class in each split, and a random few of each)
and `loader` (one `Normalizer` for training and inference, and
`DeviceLoader`, which keeps a split on the device as uint8 and serves augmented, normalised batches) with
`augment` (the batch augmentations it applies there: crop, flip, cutout).
"""
from core.data.cache import CACHE_ENV
from core.data.cifar10 import CIFAR10_CLASSES
from core.data.folders import decode_image, readable_name
from core.data.loader import DeviceLoader, Normalizer, normalize_images
from core.data.sets import DataError, Dataset, ImageSet
from core.data.sources import load_dataset
from core.data.split import channel_stats, split_train_val
from core.data.synthetic import SYNTHETIC_CLASSES

__all__ = [
    "CACHE_ENV", "CIFAR10_CLASSES", "SYNTHETIC_CLASSES", "DataError", "Dataset", "DeviceLoader", "ImageSet",
    "Normalizer", "channel_stats", "decode_image", "load_dataset", "normalize_images", "readable_name",
    "split_train_val",
]
