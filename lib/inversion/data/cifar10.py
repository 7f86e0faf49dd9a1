"""CIFAR-10 (Krizhevsky 2009): 50,000 training and 10,000 test images, 32x32 RGB, 10 classes.

Two copies can be read, and every result says which one it used (``Cifar10.source``):

* ``"exact"``: the dataset as published, in torchvision's ``cifar-10-batches-py/`` layout.
* ``"jpeg"``: an offline copy of all 60,000 images as JPEG files in one ``.tar.gz`` archive
  (``train/<class>/NNNN.jpg``, ``test/<class>/NNNN.jpg``). JPEG is lossy: pixels differ from the
  exact ones by about 6/255 on average, and models trained on exact pixels lose accuracy on it.

Lookup order (first hit wins):

1. ``CIFAR10_DIR`` (a ``cifar-10-batches-py`` folder or its parent), then
   ``<data>/cifar-10-batches-py`` (where torchvision downloads it): source ``exact``;
2. the JPEG archive named by ``CIFAR10_JPEG`` (the archive or its folder), then
   ``../shared/assets/cifar10-jpeg/`` beside the study: source ``jpeg``, sha256 verified,
   decoded once and cached as safetensors in ``<data>/cifar10/`` under the archive's hash;
3. ``torchvision.datasets.CIFAR10(<data>, download=True)`` (md5-checked, needs internet).

Offline with none of these, :func:`load` raises an error that says how to get a copy.
The JPEG copy is ordered image number first, class second (``0000`` of every class, then
``0001`` ...), so any prefix of it holds every class equally often.
"""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..paths import data_dir, repo_root, sha256

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")
SIZES = {"train": 50_000, "test": 10_000}
BATCHES = "cifar-10-batches-py"
JPEG_ARCHIVE = "cifar10-jpeg.tar.gz"
JPEG_SHA256 = "d34c68f61cca57aa9144c8f25bda427abb9921bd642d5857a2fc1a6b4416f965"
FIRST100 = "cifar10-test-first100-exact.npz"
FIRST100_SHA256 = "715ed2160923e350feec1025f2e6c02f4fcce34a236d75b074b20449d331d567"
CACHE_VERSION = 1  # bump when the decoding below changes its output
HOW_TO_GET = (
    "CIFAR-10 was not found and could not be downloaded ({error}). Get it in one of these ways:\n"
    "  * with internet: python -c \"import torchvision; torchvision.datasets.CIFAR10('{data}', download=True)\"\n"
    "    (or just call cifar10.load again online; it downloads into {data}/{batches})\n"
    "  * copy an existing {batches}/ folder into {data}/ or point CIFAR10_DIR at it\n"
    "  * offline JPEG copy: point CIFAR10_JPEG at {archive} (sha256 {sha})"
)


@dataclass
class Cifar10:
    """One split of CIFAR-10: ``images`` (N, 3, 32, 32) uint8, ``labels`` (N,) int64.

    ``source`` is ``"exact"`` or ``"jpeg"`` (see the module docstring); ``split`` names the split.
    """

    images: torch.Tensor
    labels: torch.Tensor
    source: str
    split: str = "test"

    def __len__(self) -> int:
        return len(self.labels)

    def float_images(self, index=None) -> torch.Tensor:
        """Images as float32 in [0, 1] (all, or ``images[index]``)."""
        images = self.images if index is None else self.images[index]
        return images.float() / 255.0

    def subset(self, index) -> "Cifar10":
        return Cifar10(self.images[index], self.labels[index], self.source, self.split)


# --- lookup ------------------------------------------------------------------------------------
def exact_dirs() -> list[Path]:
    """Folders that may hold ``cifar-10-batches-py``: ``CIFAR10_DIR`` first, then ``<data>/``."""
    dirs = []
    if os.environ.get("CIFAR10_DIR"):
        named = Path(os.environ["CIFAR10_DIR"])
        dirs.append(named.parent if named.name == BATCHES else named)
    return dirs + [data_dir()]


def find_exact() -> Path | None:
    """The parent folder of a complete ``cifar-10-batches-py`` (torchvision's ``root``), or None."""
    needed = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    for root in exact_dirs():
        if all((root / BATCHES / name).is_file() for name in needed):
            return root
    return None


def jpeg_candidates() -> list[Path]:
    """Where the JPEG archive may be: ``CIFAR10_JPEG`` (file or folder), then the shared assets."""
    paths = []
    if os.environ.get("CIFAR10_JPEG"):
        named = Path(os.environ["CIFAR10_JPEG"])
        paths.append(named / JPEG_ARCHIVE if named.is_dir() else named)
    return paths + [repo_root().parent / "shared" / "assets" / "cifar10-jpeg" / JPEG_ARCHIVE]


def find_jpeg() -> Path | None:
    for path in jpeg_candidates():
        if path.is_file():
            return path
    return None


def _check_sha256(path: Path, expected: str) -> None:
    actual = sha256(path)
    if actual != expected:
        raise ValueError(f"{path}: sha256 is {actual}, expected {expected}; the file is corrupt or "
                         f"not the CIFAR-10 copy this study reads (remove it or unset the variable naming it)")


# --- readers -------------------------------------------------------------------------------------
def _read_exact(root: Path, split: str) -> Cifar10:
    from torchvision.datasets import CIFAR10

    ds = CIFAR10(str(root), train=split == "train", download=False)  # md5-checks the batch files
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    return Cifar10(images, torch.tensor(ds.targets, dtype=torch.int64), "exact", split)


def _content_hash(images: torch.Tensor, labels: torch.Tensor) -> str:
    h = hashlib.sha256(images.numpy().tobytes())
    h.update(labels.numpy().tobytes())
    return h.hexdigest()


def decode_jpeg_archive(archive: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Decode every image of the archive (one pass, ~20 s): split -> (uint8 images, labels).

    Order within a split: image number first, class second (see the module docstring).
    """
    from PIL import Image
    from tqdm.auto import tqdm

    found: dict[str, list[tuple[int, int, np.ndarray]]] = {s: [] for s in SPLITS}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tqdm(tar, desc="decode CIFAR-10 JPEG", total=sum(SIZES.values()), leave=False):
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or parts[0] not in SPLITS or parts[1] not in CLASSES:
                continue
            with Image.open(io.BytesIO(tar.extractfile(member).read())) as image:
                pixels = np.asarray(image.convert("RGB"))
            if pixels.shape != (32, 32, 3):
                raise ValueError(f"{archive}:{member.name} has shape {pixels.shape}, not 32x32 RGB")
            found[parts[0]].append((int(Path(parts[2]).stem), CLASSES.index(parts[1]), pixels))
    out = {}
    for split, items in found.items():
        if len(items) != SIZES[split]:
            raise ValueError(f"{archive}: {len(items)} {split} images, expected {SIZES[split]}")
        items.sort(key=lambda t: (t[0], t[1]))
        images = torch.from_numpy(np.stack([t[2] for t in items]).transpose(0, 3, 1, 2).copy())
        out[split] = (images, torch.tensor([t[1] for t in items], dtype=torch.int64))
    return out


def cache_file(split: str, archive_sha256: str = JPEG_SHA256) -> Path:
    return data_dir() / "cifar10" / f"jpeg-{archive_sha256[:16]}-v{CACHE_VERSION}-{split}.safetensors"


def _read_jpeg(archive: Path, split: str) -> Cifar10:
    path = cache_file(split)
    if path.is_file():
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            images, labels = f.get_tensor("images"), f.get_tensor("labels")
        if meta.get("content_sha256") == _content_hash(images, labels):
            return Cifar10(images, labels, "jpeg", split)
        path.unlink()  # a damaged cache is rebuilt from the (verified) archive
    _check_sha256(archive, JPEG_SHA256)
    path.parent.mkdir(parents=True, exist_ok=True)
    for name, (images, labels) in decode_jpeg_archive(archive).items():
        save_file({"images": images, "labels": labels}, str(cache_file(name)),
                  metadata={"content_sha256": _content_hash(images, labels), "source": "jpeg",
                            "archive_sha256": JPEG_SHA256})
    return _read_jpeg(archive, split)


def _download(error_hint: str = "") -> Path:
    from torchvision.datasets import CIFAR10

    root = data_dir()
    try:
        CIFAR10(str(root), train=True, download=True)
        CIFAR10(str(root), train=False, download=True)
    except Exception as error:  # offline (URLError), blocked, or a failed checksum
        raise FileNotFoundError(HOW_TO_GET.format(
            error=error, data=root, batches=BATCHES, archive=JPEG_ARCHIVE, sha=JPEG_SHA256)) from error
    return root


def locate(download: bool = True) -> tuple[str, Path]:
    """Which copy :func:`load` reads: ``("exact", root)`` or ``("jpeg", archive)``."""
    root = find_exact()
    if root is not None:
        return "exact", root
    archive = find_jpeg()
    if archive is not None:
        return "jpeg", archive
    if not download:
        raise FileNotFoundError(HOW_TO_GET.format(
            error="download=False", data=data_dir(), batches=BATCHES, archive=JPEG_ARCHIVE, sha=JPEG_SHA256))
    return "exact", _download()


def load(split: str = "train", n: int | None = None, seed: int = 0, download: bool = True) -> Cifar10:
    """One split of CIFAR-10, from the first copy found (see the module docstring).

    ``n``: a seeded random subset of ``n`` images (kept in dataset order); None: the whole split.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if n is not None and not 0 < n <= SIZES[split]:
        raise ValueError(f"n must be in 1..{SIZES[split]} for the {split} split, not {n}")
    source, where = locate(download)
    data = _read_exact(where, split) if source == "exact" else _read_jpeg(where, split)
    if n is None or n == len(data):
        return data
    keep = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return data.subset(keep)


def first100_candidates() -> list[Path]:
    paths = [p.parent / FIRST100 for p in jpeg_candidates()]
    return paths + [data_dir() / "cifar10" / FIRST100]


def exact_first100() -> Cifar10:
    """The exact first 100 test images (source ``"exact"``), to measure what the JPEG copy moves.

    From the exact dataset when it is on this machine, else from the file
    ``cifar10-test-first100-exact.npz`` beside the JPEG archive (sha256 verified).
    """
    root = find_exact()
    if root is not None:
        return _read_exact(root, "test").subset(slice(0, 100))
    for path in first100_candidates():
        if path.is_file():
            _check_sha256(path, FIRST100_SHA256)
            with np.load(path, allow_pickle=False) as f:
                images = torch.from_numpy(np.ascontiguousarray(f["x_uint8_nhwc"].transpose(0, 3, 1, 2)))
                labels = torch.from_numpy(f["y"].astype(np.int64))
            return Cifar10(images, labels, "exact", "test")
    raise FileNotFoundError(
        f"the exact first 100 CIFAR-10 test images were not found: neither the exact dataset "
        f"({BATCHES} under {[str(d) for d in exact_dirs()]}) nor {FIRST100} in "
        f"{[str(p.parent) for p in first100_candidates()]}. Download the exact dataset with "
        f"cifar10.load() on a machine with internet access.")
