"""Face image folders (e.g. the CelebA aligned crops) for the paper profile of notebook 06.

The zero-shot inversion paper (Dong et al., arXiv 2107.06304) inverts an SNGAN trained on CelebA
faces at 128x128. CelebA cannot be downloaded automatically here (it is served from Google Drive /
Baidu links behind its licence page), so this module only reads a copy you already have. Lookup:

1. the ``root`` argument;
2. the ``FACES_DIR`` environment variable;
3. ``<data>/faces/`` (``data/`` of the study, see :mod:`inversion.paths`).

The first of these that is given is used (an explicitly named folder that does not exist is an
error, not a silent fall-through). Two layouts are read, both recursively:

* a flat folder of images, e.g. CelebA's ``img_align_celeba/000001.jpg``;
* an ImageFolder-style folder ``<root>/<class>/<image>`` (the class folders are ignored).

Files ending in ``.jpg``, ``.jpeg``, ``.png`` or ``.webp`` (any case) are images; names starting
with a dot are skipped. Each image is centre-cropped to a square (the shorter side) and resized to
``size`` (bicubic), the usual CelebA-128 preprocessing of GAN papers (178x218 crop -> 178x178 ->
128x128). Pixels are RGB in [0, 1] (or uint8), like every other dataset of the study.
"""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..paths import data_dir
from .image_folder import seeded_order

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
CELEBA_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"

HOW_TO_GET = (
    "No face image folder was found at {folder} ({why}).\n"
    "Notebook 06's paper profile trains its SNGAN on face images, e.g. CelebA's aligned and cropped\n"
    "faces ('Align&Cropped Images', img_align_celeba.zip, 202,599 JPEGs of 178x218), from\n"
    "  " + CELEBA_URL + "\n"
    "Unpack them anywhere, as a flat folder of images (<root>/000001.jpg, ...) or as class folders\n"
    "(<root>/<class>/*.jpg); .jpg, .jpeg, .png and .webp files are read. Then point the study at\n"
    "the folder with FACES_DIR=<root>, or put it at {local}."
)


def find(root: str | Path | None = None) -> Path:
    """The face folder: ``root``, else ``FACES_DIR``, else ``<data>/faces``; it must exist."""
    if root:
        folder, how = Path(root), "the root argument"
    elif os.environ.get("FACES_DIR"):
        folder, how = Path(os.environ["FACES_DIR"]), "FACES_DIR"
    else:
        folder, how = data_dir() / "faces", "the default location; FACES_DIR is not set"
    if not folder.is_dir():
        why = f"named by {how}, {'is not a folder' if folder.exists() else 'does not exist'}"
        raise FileNotFoundError(HOW_TO_GET.format(folder=folder, why=why, local=data_dir() / "faces"))
    return folder


def list_images(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (recursive, sorted by path, hidden names skipped)."""
    files = [p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(files)


def read_image(path: Path, size: int) -> np.ndarray:
    """One image as (size, size, 3) uint8: centre-cropped to a square, resized (bicubic)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")          # decodes the file: truncated or corrupt files fail here
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        raise OSError(f"cannot read the face image {path} ({type(error).__name__}: {error}); "
                      f"delete or replace the file, or point FACES_DIR at another folder") from error
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != size:
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return np.array(image, dtype=np.uint8)   # a writable copy (torch.from_numpy warns on read-only arrays)


def load(n: int | None = 10000, size: int = 128, root: str | Path | None = None, seed: int = 0,
         uint8: bool = False, progress: bool = True, workers: int | None = None) -> torch.Tensor:
    """``n`` face images (a seeded random subset of the folder; all of them if ``n`` is None or
    larger than the folder, with a warning saying how many there are).

    Returns (N, 3, size, size): float RGB in [0, 1], or uint8 with ``uint8=True`` (a quarter of
    the memory: 200k images at 128 px take 9.8 GB as uint8). ``workers`` threads decode the files
    (default: up to 8); the result does not depend on it.
    """
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    folder = find(root)
    files = list_images(folder)
    if not files:
        raise FileNotFoundError(HOW_TO_GET.format(
            folder=folder, why=f"the folder holds no {'/'.join(EXTENSIONS)} files, also not in subfolders",
            local=data_dir() / "faces"))
    if n is not None and n > len(files):
        warnings.warn(f"asked for {n} face images, but {folder} holds only {len(files)}: using all {len(files)}",
                      stacklevel=2)
    chosen = [files[i] for i in seeded_order(len(files), n, seed)]
    count = len(chosen)
    out = torch.empty(count, 3, size, size, dtype=torch.uint8)
    workers = min(8, os.cpu_count() or 1) if workers is None else max(1, workers)
    with ThreadPoolExecutor(workers) as pool:   # map keeps the order: the result is the same for any workers
        arrays = pool.map(lambda p: read_image(p, size), chosen)
        for i, array in enumerate(tqdm(arrays, total=count, desc=f"reading {count} face images",
                                       disable=not progress)):
            out[i] = torch.from_numpy(array).permute(2, 0, 1)
    return out if uint8 else out.float() / 255
