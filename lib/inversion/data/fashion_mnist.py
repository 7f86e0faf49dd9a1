"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) read straight from its four IDX ``.gz`` files.

Lookup order for the folder that holds the files:
1. the ``root`` argument, or the ``FASHION_MNIST_DIR`` environment variable;
2. ``<data>/fashion-mnist/`` (``data/`` of the study, see :mod:`inversion.paths`);
3. ``/usr/share/datasets/fashion-mnist/`` (Debian package ``dataset-fashion-mnist``);
4. a torchvision download into ``<data>/fashion-mnist/`` (needs internet).
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from ..paths import data_dir

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
HOW_TO_GET = (
    "Fashion-MNIST was not found. Get it in one of these ways:\n"
    "  * Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist  (files land in {debian})\n"
    "  * copy the four IDX .gz files ({files}) into {local} or a folder named by FASHION_MNIST_DIR\n"
    "  * with internet access, call fashion_mnist.load(..., download=True)"
)


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzip-compressed or not) into a numpy array of its declared shape."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = data[0] * 256 + data[1], data[2], data[3]
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (magic {data[:4].hex()})")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: {array.size} bytes for shape {shape}")
    return array.reshape(shape)


def candidate_dirs(root: str | Path | None = None) -> list[Path]:
    named = root or os.environ.get("FASHION_MNIST_DIR")
    dirs = [Path(named)] if named else []
    return dirs + [data_dir() / "fashion-mnist", DEBIAN_DIR]


def find(root: str | Path | None = None) -> Path | None:
    """The first candidate folder that holds all four files, or None."""
    needed = [name for pair in FILES.values() for name in pair]
    for folder in candidate_dirs(root):
        if all((folder / name).is_file() for name in needed):
            return folder
    return None


def download(target: Path | None = None) -> Path:
    """Download the IDX files with torchvision (needs internet) into ``<data>/fashion-mnist``."""
    from torchvision.datasets import FashionMNIST

    target = Path(target or data_dir() / "fashion-mnist")
    target.mkdir(parents=True, exist_ok=True)
    FashionMNIST(str(target / "_torchvision"), train=True, download=True)
    FashionMNIST(str(target / "_torchvision"), train=False, download=True)
    raw = target / "_torchvision" / "FashionMNIST" / "raw"
    for pair in FILES.values():
        for name in pair:
            (target / name).write_bytes((raw / name).read_bytes())
    return target


def load(split: str = "train", root: str | Path | None = None,
         download_if_missing: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64 of one split ('train' or 'test')."""
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, not {split!r}")
    folder = find(root)
    if folder is None:
        if not download_if_missing:
            files = ", ".join(name for pair in FILES.values() for name in pair)
            raise FileNotFoundError(HOW_TO_GET.format(debian=DEBIAN_DIR, files=files,
                                                      local=data_dir() / "fashion-mnist"))
        folder = download()
    images_file, labels_file = FILES[split]
    images, labels = read_idx(folder / images_file), read_idx(folder / labels_file)
    if len(images) != len(labels):
        raise ValueError(f"{folder}: {len(images)} images but {len(labels)} labels")
    return images, labels.astype(np.int64)
