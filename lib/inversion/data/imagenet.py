"""ImageNet train / validation images at a small side (64 or 128 px), stored as uint8, for paper B.

Teterwak et al. (2021) invert ImageNet classifiers' logits into 64-128 px images. This module
reads an ImageNet-style folder (found as in :mod:`inversion.data.image_folder`: the ``root``
argument, ``IMAGENET_DIR``, ``<data>/imagenet/``) with the standard evaluation transform at the
study's side -- shorter side to ``size / crop_fraction``, centre crop to ``size`` -- and returns an
:class:`ImageNet` split with the interface of :class:`inversion.data.cifar10.Cifar10`
(``images`` uint8 (N, 3, S, S), ``labels``, ``source``, ``split``, ``float_images``, ``subset``).
uint8 bounds the memory: 100,000 training images at 128 px take 4.9 GB (float32: 19.7 GB).

With the default ``crop_fraction`` 0.875 a 128 px image shows the same field of view as the
224 px evaluation crop of a timm model with ``crop_pct`` 0.875 (resize to 256, crop 224), so
upsampling it to the model's input size (:class:`inversion.models.architectures.ResizedInput`)
feeds the classifier the picture it was evaluated on, at a lower resolution.

The split ``"test"`` reads the ``val/`` folder (ImageNet's test labels are not public). A seeded
random subset of ``n`` images is kept in its random order, so any prefix (the first images a
figure shows) mixes the classes instead of starting with the first class folders.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import image_folder

FOLDERS = {"train": "train", "test": "val", "val": "val"}


@dataclass
class ImageNet:
    """One split of an ImageNet-style folder: ``images`` (N, 3, S, S) uint8, ``labels`` (N,) int64.

    ``source`` names the copy (side, transform and a digest of the files read), so caches of
    logits computed from it are keyed by exactly these images; ``classes`` are the folder names
    (for ImageNet the wnids, in the usual 0..999 class order).
    """

    images: torch.Tensor
    labels: torch.Tensor
    source: str
    split: str = "test"
    classes: tuple[str, ...] = field(default=(), repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def float_images(self, index=None) -> torch.Tensor:
        """Images as float32 in [0, 1] (all, or ``images[index]``)."""
        images = self.images if index is None else self.images[index]
        return images.float() / 255.0

    def subset(self, index) -> "ImageNet":
        return ImageNet(self.images[index], self.labels[index], self.source, self.split, self.classes)


def load(split: str = "test", n: int | None = None, size: int = 128, seed: int = 0,
         root: str | Path | None = None, crop_fraction: float = 0.875, interpolation: str = "bilinear",
         workers: int | None = None, progress: bool = True) -> ImageNet:
    """``n`` images of ``split`` (``train``, or ``test`` / ``val`` for the validation folder).

    A seeded random subset (all images when ``n`` is None), in that random order. ``workers``:
    decoding processes (default: up to 8 of the CPU cores for 512 images or more, else none).
    """
    from torchvision import datasets

    if split not in FOLDERS:
        raise ValueError(f"split must be one of {tuple(FOLDERS)}, not {split!r}")
    if size <= 0:
        raise ValueError(f"need size > 0, got {size}")
    if n is not None and n <= 0:
        raise ValueError(f"n must be positive, not {n}")
    transform = image_folder.evaluation_transform(size, crop_fraction, interpolation)
    folder_path = image_folder.find(FOLDERS[split], root)
    folder = datasets.ImageFolder(str(folder_path), transform=transform)
    order = image_folder.seeded_order(len(folder), n, seed)
    digest = hashlib.sha256()
    for i in order:
        digest.update(os.path.relpath(folder.samples[i][0], folder_path).encode())
        digest.update(b"\0")
    source = f"image-folder {size}px crop {crop_fraction:g} {interpolation} {digest.hexdigest()[:12]}"
    images, labels = image_folder.read(folder, order, size, workers, progress, desc=f"reading {split} images at {size} px")
    return ImageNet(images, labels, source, "test" if split == "val" else split, tuple(folder.classes))
