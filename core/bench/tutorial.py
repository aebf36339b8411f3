"""The tutorial way, for the side-by-side ratio: ImageFolder + DataLoader workers + a plain float32 loop."""
from __future__ import annotations

import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from core.bench.measure import Contention, Measurement, load_average, peak_memory_mib, reset_peak_memory
from core.data import DataError, load_dataset
from core.training.device import synchronize
from core.training.models import get_model
from core.training.recipes import PRESETS

# The notebook recipe's own settings, in a plain PyTorch loop.
TUTORIAL = {key: PRESETS["notebook-classic"].settings[key]
            for key in ("model", "lr", "batch_size", "epochs", "crop_padding")}
TUTORIAL_MEAN = (0.4914, 0.4822, 0.4465)  # the usual hard-coded CIFAR-10 constants of tutorials
TUTORIAL_STD = (0.2470, 0.2435, 0.2616)


class ArrayImages(torch.utils.data.Dataset):
    """Images held as a uint8 array, handed out as PIL images like torchvision's CIFAR10 dataset."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, classes: Sequence[str], transform: Callable):
        self.images, self.labels, self.classes, self.transform = images, labels, list(classes), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def _image_folder_root(folder: Path) -> Path:
    """The folder holding train/ and test/ (an archive may wrap them in one more folder)."""
    for path in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]:
        if (path / "train").is_dir() and (path / "test").is_dir():
            return path
    raise DataError(f"No train/ and test/ folders under {folder}; the data must be in ImageFolder layout.")


def tutorial_datasets(source: str, scratch: Path) -> tuple[Any, Any, float]:
    """(train, test, load seconds): ImageFolder over the files for a folder or an archive (extracted into
    `scratch`, which is the disk-load time), in-memory PIL images for 'cifar10' and 'synthetic'."""
    from torchvision import datasets, transforms

    normalize = transforms.Normalize(TUTORIAL_MEAN, TUTORIAL_STD)
    train_tf = transforms.Compose([transforms.RandomCrop(32, padding=TUTORIAL["crop_padding"]),
                                   transforms.RandomHorizontalFlip(), transforms.ToTensor(), normalize])
    test_tf = transforms.Compose([transforms.ToTensor(), normalize])
    start = time.perf_counter()
    path = Path(source).expanduser()
    if source.lower() in ("cifar10", "synthetic"):
        data = load_dataset(source)
        train = ArrayImages(data.train.images, data.train.labels, data.classes, train_tf)
        test = ArrayImages(data.test.images, data.test.labels, data.classes, test_tf)
        return train, test, time.perf_counter() - start
    if path.is_file():
        folder = scratch / "extracted"
        if path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                archive.extractall(folder)
        else:
            with tarfile.open(path, "r:*") as archive:
                archive.extractall(folder, filter="data")
        path = folder
    root = _image_folder_root(path)
    train = datasets.ImageFolder(str(root / "train"), transform=train_tf)
    test = datasets.ImageFolder(str(root / "test"), transform=test_tf)
    return train, test, time.perf_counter() - start


def train_tutorial_way(train_set, test_set, device: torch.device, seed: int, epochs: int,
                       workers: int) -> Measurement:
    """The notebook recipe as a tutorial writes it: DataLoader workers decode and augment every image of
    every epoch on the CPU, float32, one optimiser step per batch, then a plain test loop."""
    m = Measurement(seed=seed, load_avg=load_average())
    reset_peak_memory(device)
    contention, start = Contention(), time.perf_counter()
    torch.manual_seed(seed)
    pin = device.type == "cuda"
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=TUTORIAL["batch_size"], shuffle=True,
                                               num_workers=workers, pin_memory=pin)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000, num_workers=workers, pin_memory=pin)
    model = get_model(TUTORIAL["model"], len(test_set.classes)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=TUTORIAL["lr"])
    criterion = nn.CrossEntropyLoss()
    epoch_s = 0.0
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        for x, y in train_loader:
            x, y = x.to(device, non_blocking=pin), y.to(device, non_blocking=pin)  # (B, 3, 32, 32), (B,)
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        synchronize(device)
        epoch_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in test_loader:
            correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
    m.test_s = time.perf_counter() - t0
    m.test_acc = correct / len(test_set)
    m.train_s = epoch_s + m.test_s
    m.images_per_s = epochs * len(train_set) / epoch_s if epoch_s > 0 else None
    m.wall_s, m.others_cpu = time.perf_counter() - start, contention.others()
    m.peak_mib = peak_memory_mib(device)
    return m
