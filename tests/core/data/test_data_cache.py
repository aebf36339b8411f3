"""core.data's decode cache and the synthetic source."""
from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import core.data.cifar10
import core.data.folders
from core.data import (
    CACHE_ENV, CIFAR10_CLASSES, DataError, DeviceLoader, channel_stats, load_dataset,
)

pytestmark = pytest.mark.usefixtures("torch_single_thread")

from tests.data_trees import (_encode, forbid_decoding, make_archive)


# ---------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["folder", "tar.gz"])
def test_second_load_comes_from_the_cache(tree: Path, cache: Path, tmp_path: Path, kind: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    source = tree if kind == "folder" else make_archive(tree, tmp_path / "d.tar.gz")
    first = load_dataset(str(source))
    files = sorted(p.name for p in (cache / first.fingerprint).iterdir())
    assert files == ["meta.json", "test_images.npy", "test_labels.npy", "train_images.npy", "train_labels.npy"]
    forbid_decoding(monkeypatch)
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
