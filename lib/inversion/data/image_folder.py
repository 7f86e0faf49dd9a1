"""ImageNet-style image folders (``<root>/<split>/<class>/<image>``) for the paper profile.

ImageNet cannot be downloaded automatically (its licence requires a sign-in at image-net.org),
so this module only reads a copy you already have, in the layout torchvision's
``ImageFolder`` expects, e.g. ``val/n01440764/ILSVRC2012_val_00000293.JPEG``. Lookup order:

1. the ``root`` argument;
2. the ``IMAGENET_DIR`` environment variable;
3. ``<data>/imagenet/`` (``data/`` of the study, see :mod:`inversion.paths`).

Images are resized (shorter side to ``size / crop_fraction``, with ``interpolation``) and
centre-cropped to ``size``, the standard ImageNet evaluation transform; ``config=`` (a model's
``InputConfig``) takes size, crop and interpolation from the model's own data config (timm's).
Classifier normalization is left to the model wrapper, so the tensors are plain RGB in [0, 1]
like every other dataset of the study.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..paths import data_dir

HOW_TO_GET = (
    "No {split!r} split of an ImageNet-style image folder was found (looked in: {looked}).\n"
    "ImageNet needs a sign-in at https://image-net.org/download.php; once downloaded, lay it out as\n"
    "  <root>/train/<wnid>/*.JPEG and <root>/val/<wnid>/*.JPEG\n"
    "(the validation images sorted into class folders, e.g. with the valprep.sh script of the\n"
    "PyTorch ImageNet example), then point the study at it with IMAGENET_DIR=<root>\n"
    "or put it at {local}."
)


def candidate_dirs(root: str | Path | None = None) -> list[Path]:
    named = [Path(r) for r in (root, os.environ.get("IMAGENET_DIR")) if r]
    return named + [data_dir() / "imagenet"]


def find(split: str, root: str | Path | None = None) -> Path:
    """The folder of ``split`` (``train`` or ``val``) under the first candidate root that has one."""
    candidates = candidate_dirs(root)
    for folder in candidates:
        if (folder / split).is_dir() and any(p.is_dir() for p in (folder / split).iterdir()):
            return folder / split
    raise FileNotFoundError(HOW_TO_GET.format(split=split, looked=", ".join(str(c) for c in candidates),
                                              local=data_dir() / "imagenet"))


def load(split: str = "val", n: int | None = 1000, size: int = 224, crop_fraction: float = 0.875,
         root: str | Path | None = None, seed: int = 0, uint8: bool = False,
         progress: bool = True, interpolation: str = "bilinear", config=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of ``split`` (a seeded random subset; all of them if ``n`` is None).

    ``config``: a model's ``InputConfig``; its input size, ``crop_pct`` and ``interpolation``
    replace ``size``, ``crop_fraction`` and ``interpolation``.

    Returns images (N, 3, size, size), float in [0, 1] (or uint8 with ``uint8=True``, a quarter
    of the memory: 50k images at 224 take 7.5 GB) and their class indices (ImageFolder's
    sorted-folder order, which for ImageNet's wnid folders is the usual 0..999 class order).
    """
    from torchvision import datasets

    if config is not None:
        size, crop_fraction, interpolation = config.input_size[-1], config.crop_pct, config.interpolation
    folder = datasets.ImageFolder(str(find(split, root)), transform=evaluation_transform(size, crop_fraction, interpolation))
    images, labels = read(folder, seeded_order(len(folder), n, seed), size, progress=progress,
                          desc=f"reading {split} images at {size} px")
    return (images if uint8 else images.float() / 255), labels


def _stack(batch):
    return torch.stack([b[0] for b in batch]), torch.tensor([b[1] for b in batch])


def read(folder, order: list[int], size: int, workers: int | None = None, progress: bool = True,
         desc: str = "reading images") -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``order`` of a torchvision ``ImageFolder`` whose transform gives uint8 (3, size, size)
    tensors, as one uint8 (N, 3, size, size) tensor and their labels, in that order.

    ``workers``: decoding processes (default: up to 8 of the CPU cores for 512 images or more, else
    none); the result does not depend on them.
    """
    count = len(order)
    if workers is None:
        workers = min(8, max(0, (os.cpu_count() or 1) - 1)) if count >= 512 else 0
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(folder, order), batch_size=64, shuffle=False,
                                         num_workers=workers, collate_fn=_stack)
    images = torch.empty(count, 3, size, size, dtype=torch.uint8)
    labels = torch.empty(count, dtype=torch.int64)
    start = 0
    with tqdm(total=count, desc=desc, disable=not progress, leave=False) as bar:
        for x, y in loader:
            images[start:start + len(x)], labels[start:start + len(x)] = x, y
            start += len(x)
            bar.update(len(x))
    return images, labels


def evaluation_transform(size: int, crop_fraction: float = 0.875, interpolation: str = "bilinear"):
    """The standard evaluation transform to uint8 tensors: shorter side to ``size / crop_fraction``
    (with ``interpolation``), centre crop to ``size``."""
    from torchvision import transforms

    if not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
    resize = transforms.Resize(round(size / crop_fraction), interpolation=transforms.InterpolationMode(interpolation))
    return transforms.Compose([resize, transforms.CenterCrop(size), transforms.PILToTensor()])


def seeded_order(total: int, n: int | None, seed: int = 0) -> list[int]:
    """The indices of a seeded random subset of ``n`` of ``total`` items (all when ``n`` is None),
    in their random order."""
    count = total if n is None else min(n, total)
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:count].tolist()
