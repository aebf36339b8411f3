"""core.data's validation split, statistics and DeviceLoader, and the real CIFAR-10 archive (skipped when absent)."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from core.data.augment import Augment
from core.data import (
    CIFAR10_CLASSES, DataError, Dataset, DeviceLoader, ImageSet, channel_stats, load_dataset, normalize_images,
    split_train_val,
)

pytestmark = pytest.mark.usefixtures("torch_single_thread")

from tests.data_trees import (forbid_decoding, one_sentence)


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
    forbid_decoding(monkeypatch)
    again = load_dataset(ds.source)  # CIFAR_CACHE_DIR is still the session cache
    assert again.fingerprint == ds.fingerprint
