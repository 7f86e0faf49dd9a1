"""Fashion-Scenes: Fashion-MNIST garments tinted and placed on coloured backgrounds.

Each image is ``alpha * foreground + (1 - alpha) * background`` where ``alpha`` is the garment's
Fashion-MNIST intensity, scaled to a random size and moved to a random position. The class
depends only on the garment; foreground colour, background colour, position and scale are
nuisance factors with known ground truth, so "what does a classifier keep about its input"
becomes a measurable number. Deterministic from ``seed``; cached on disk under a hash of the
recipe, and the cached arrays are verified against their recorded content hash on load.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..paths import data_dir
from . import fashion_mnist

CLASSES = fashion_mnist.CLASSES
FACTORS = ("foreground", "background", "center", "scale")
SPLIT_SEED_OFFSET = {"train": 0, "test": 1_000_003}


@dataclass(frozen=True)
class SceneRecipe:
    """How a scene is drawn. Changing any field (or ``version``) changes the cache key."""

    size: int = 32                          # side of the square RGB image, pixels
    scale_range: tuple[float, float] = (0.55, 0.95)  # garment box side / image side
    min_contrast: float = 0.4               # minimum RGB distance between garment and background
    version: int = 1                        # bump when the drawing code changes

    def key(self, split: str, seed: int, n: int | None) -> str:
        blob = json.dumps({**dataclasses.asdict(self), "split": split, "seed": seed, "n": n},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Scenes:
    """A split of Fashion-Scenes: uint8 images plus the ground-truth factors of every image.

    ``images`` (N, 3, S, S) uint8; ``labels`` (N,) int64; ``foreground``/``background`` (N, 3)
    float RGB in [0, 1]; ``center`` (N, 2) garment-box centre (x, y) in pixels; ``scale`` (N,)
    garment-box side as a fraction of the image side.
    """

    images: torch.Tensor
    labels: torch.Tensor
    foreground: torch.Tensor
    background: torch.Tensor
    center: torch.Tensor
    scale: torch.Tensor
    recipe: SceneRecipe = SceneRecipe()

    def __len__(self) -> int:
        return len(self.labels)

    def float_images(self, index=slice(None)) -> torch.Tensor:
        """Images in [0, 1] as float32."""
        return self.images[index].float() / 255.0

    def subset(self, index) -> "Scenes":
        return Scenes(*(getattr(self, f)[index] for f in
                        ("images", "labels", "foreground", "background", "center", "scale")),
                      recipe=self.recipe)

    def factors(self, index=slice(None)) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name)[index] for name in FACTORS}


def _sample_colours(rng: np.random.Generator, n: int, min_contrast: float):
    fg, bg = rng.random((n, 3)), rng.random((n, 3))
    bad = np.linalg.norm(fg - bg, axis=1) < min_contrast
    while bad.any():  # rejection sampling keeps both colours uniform on the allowed set
        fg[bad], bg[bad] = rng.random((bad.sum(), 3)), rng.random((bad.sum(), 3))
        bad = np.linalg.norm(fg - bg, axis=1) < min_contrast
    return fg, bg


def render(garments: np.ndarray, foreground: np.ndarray, background: np.ndarray,
           center: np.ndarray, scale: np.ndarray, size: int, chunk: int = 4096) -> torch.Tensor:
    """Draw scenes: garment intensity as alpha, scaled/moved by an affine grid. Returns float [0,1].

    A pixel at position p (in pixels, 0..size) samples the garment at (p - c) / (L/2) in the
    garment's normalized coordinates, with L = scale * size the side of the garment box.
    """
    n = len(garments)
    out = torch.empty(n, 3, size, size)
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        alpha = torch.from_numpy(np.array(garments[sl])).float().div(255).unsqueeze(1)
        side = torch.from_numpy(scale[sl]).float() * size
        c = torch.from_numpy(center[sl]).float()
        theta = torch.zeros(len(alpha), 2, 3)
        theta[:, 0, 0] = size / side
        theta[:, 1, 1] = size / side
        theta[:, :, 2] = (size / 2 - c) * 2 / side[:, None]
        grid = F.affine_grid(theta, [len(alpha), 1, size, size], align_corners=False)
        a = F.grid_sample(alpha, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        fg = torch.from_numpy(foreground[sl]).float()[:, :, None, None]
        bg = torch.from_numpy(background[sl]).float()[:, :, None, None]
        out[sl] = a * fg + (1 - a) * bg
    return out


def generate(split: str = "train", seed: int = 0, n: int | None = None,
             recipe: SceneRecipe = SceneRecipe(), mnist_root: str | Path | None = None) -> Scenes:
    """Generate a split from Fashion-MNIST (no caching; see :func:`load`)."""
    garments, labels = fashion_mnist.load(split, root=mnist_root)
    rng = np.random.default_rng(seed + SPLIT_SEED_OFFSET[split])
    if n is not None:
        if not 0 < n <= len(labels):
            raise ValueError(f"n must be in 1..{len(labels)} for split {split!r}, not {n}")
        index = np.sort(rng.choice(len(labels), size=n, replace=False))
        garments, labels = garments[index], labels[index]
    count = len(labels)
    fg, bg = _sample_colours(rng, count, recipe.min_contrast)
    scale = rng.uniform(*recipe.scale_range, size=count)
    half = scale * recipe.size / 2
    center = np.stack([rng.uniform(half, recipe.size - half) for _ in range(2)], axis=1)
    images = render(garments, fg, bg, center, scale, recipe.size)
    return Scenes(images=(images * 255).round().to(torch.uint8),
                  labels=torch.from_numpy(labels),
                  foreground=torch.from_numpy(fg).float(), background=torch.from_numpy(bg).float(),
                  center=torch.from_numpy(center).float(), scale=torch.from_numpy(scale).float(),
                  recipe=recipe)


def _content_hash(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].contiguous().numpy().tobytes())
    return h.hexdigest()


def load(split: str = "train", seed: int = 0, n: int | None = None, size: int = 32,
         recipe: SceneRecipe | None = None, cache: bool = True,
         mnist_root: str | Path | None = None) -> Scenes:
    """A split of Fashion-Scenes, generated once and then read from ``<data>/fashion-scenes/``.

    ``n`` draws a seeded random subset of the split (None: all 60k train / 10k test images).
    """
    if split not in SPLIT_SEED_OFFSET:
        raise ValueError(f"split must be one of {sorted(SPLIT_SEED_OFFSET)}, not {split!r}")
    recipe = recipe or SceneRecipe(size=size)
    path = data_dir() / "fashion-scenes" / f"{split}-s{recipe.size}-{recipe.key(split, seed, n)}.safetensors"
    fields = ("images", "labels", "foreground", "background", "center", "scale")
    if cache and path.is_file():
        tensors = load_file(path)
        with safe_open(str(path), "pt") as handle:
            expected = handle.metadata().get("content_sha256")
        if expected == _content_hash(tensors):
            return Scenes(*(tensors[name] for name in fields), recipe=recipe)
    scenes = generate(split, seed, n, recipe, mnist_root)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {name: getattr(scenes, name).contiguous() for name in fields}
        meta = {"recipe": json.dumps(dataclasses.asdict(recipe)), "split": split,
                "seed": str(seed), "n": str(n), "content_sha256": _content_hash(tensors)}
        save_file(tensors, str(path), metadata=meta)
    return scenes
