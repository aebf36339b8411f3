"""Shared pytest fixtures: a data cache outside the repo, the real CIFAR-10 JPEG archive when present, and a
tiny ImageFolder tree with a fresh cache for the data tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from core.data import CACHE_ENV, Dataset, load_dataset
from tests import REPO
from tests.data_trees import make_tree

# ../shared/data beside the checkout (see shared/data/README.md); never copied into the repo.
CIFAR_JPEG_ARCHIVE = REPO.parent / "shared/data/cifar10-jpeg.tar.gz"


@pytest.fixture(scope="session")
def session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data-cache folder for the whole test session (outside the repo)."""
    return tmp_path_factory.mktemp("cifar-cache")


@pytest.fixture(autouse=True, scope="session")
def _data_cache_outside_repo(session_cache_dir: Path) -> Iterator[None]:
    """Point CIFAR_CACHE_DIR at a session tmp dir so no test writes a cache into the repo's data/."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(session_cache_dir))
        yield


@pytest.fixture(scope="session")
def cifar_jpeg(session_cache_dir: Path) -> Dataset:
    """The real CIFAR-10 images from ../shared/data/cifar10-jpeg.tar.gz, decoded once per session; skips when absent."""
    if not CIFAR_JPEG_ARCHIVE.is_file():
        pytest.skip(f"real CIFAR-10 archive not found at {CIFAR_JPEG_ARCHIVE}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(session_cache_dir))
        return load_dataset(str(CIFAR_JPEG_ARCHIVE))


@pytest.fixture
def torch_single_thread() -> Iterator[None]:
    """Run a test with one torch CPU thread (opt in with `pytest.mark.usefixtures("torch_single_thread")`).

    On this shared 2-core machine, small tensor ops with 2 intra-op threads wait for a busy core and
    run ~50x slower under load; one thread is both faster and steadier for tiny test tensors.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the real app in Debian's Chromium (skipped without it)")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "tree")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data-cache folder for this test only."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder
