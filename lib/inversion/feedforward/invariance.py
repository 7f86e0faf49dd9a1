"""Probing invariance with a feedforward inverse (Teterwak et al. 2021, Sec. 5).

* **Noise resampling** (Sec. 5.1): several noises per logit vector; what changes between the
  samples is what the logits do not pin down. :func:`resample` draws the samples,
  :func:`pixel_variance` is their per-pixel variance (averaged over colour channels).
* **Logit manipulation** (Sec. 5.4): :func:`add_constant` to every logit (the softmax does not
  change), :func:`scale_logits`, :func:`add_noise` (Gaussian), :func:`interpolate` between two
  images' logits, :func:`raise_class` (a non-top class).
* **Image manipulation** (Sec. 5.4): :func:`manipulate_images` -- horizontal flip, a shift
  toward the image centre, a recolouring (RGB channel rotation); each comes with the factors the
  manipulated image has, so "does the reconstruction follow?" becomes a number per factor.
* **Prototypes** (Sec. 5.3, misclassified images): :func:`class_prototype_distances`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.fashion_scenes import Scenes
from .train import TrainedInverse


@torch.no_grad()
def resample(inverse: TrainedInverse, logits: torch.Tensor, n_noise: int, seed: int = 0) -> torch.Tensor:
    """``n_noise`` reconstructions per logit vector: (N, n_noise, 3, S, S), noise seeded by ``seed``."""
    g = inverse.generator
    rng = torch.Generator().manual_seed(seed)
    z = g.sample_noise(len(logits) * n_noise, rng, "cpu")
    out = inverse.invert(logits.repeat_interleave(n_noise, 0), z=z)
    return out.view(len(logits), n_noise, *out.shape[1:])


def pixel_variance(samples: torch.Tensor) -> torch.Tensor:
    """Per-pixel variance across the noise samples (dim 1), averaged over colour: (N, S, S)."""
    return samples.var(dim=1, unbiased=True).mean(dim=1)


# --- logit manipulations: logits (N, K) -> manipulated logits (N, K) --------------------------------
def add_constant(logits: torch.Tensor, c: float) -> torch.Tensor:
    """Add ``c`` to every logit: the softmax, hence the classifier's probabilities, do not change."""
    return logits + c


def scale_logits(logits: torch.Tensor, factor: float) -> torch.Tensor:
    """Multiply the logits by ``factor`` (changes confidence, keeps the ranking)."""
    return logits * factor


def add_noise(logits: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """Add Gaussian noise of standard deviation ``sigma`` times the logits' own std (seeded)."""
    rng = torch.Generator().manual_seed(seed)
    return logits + sigma * logits.std() * torch.randn(logits.shape, generator=rng)


def interpolate(logits_a: torch.Tensor, logits_b: torch.Tensor, t: float) -> torch.Tensor:
    """``(1 - t) * a + t * b``: a path between two images' logit vectors."""
    return (1 - t) * logits_a + t * logits_b


def raise_class(logits: torch.Tensor, amount: float, rank: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Raise the class ranked ``rank`` (1 = runner-up) by ``amount`` times the logits' std.

    Returns the manipulated logits and the raised class of each row.
    """
    target = logits.argsort(dim=1, descending=True)[:, rank]
    out = logits.clone()
    out[torch.arange(len(out)), target] += amount * logits.std()
    return out, target


# --- image manipulations with known factor changes --------------------------------------------------
def manipulate_images(scenes: Scenes, kind: str, shift: int = 4) -> Scenes:
    """A copy of ``scenes`` with every image manipulated and the factors updated to match.

    ``flip``: horizontal mirror (centre x -> S - x). ``shift``: move the content by ``shift`` pixels
    horizontally toward the image centre (the vacated columns repeat the border, which is
    background: the garment box always lies inside the image), centre x -> x +- shift.
    ``recolour``: rotate the colour channels (R, G, B) -> (G, B, R); the foreground and background
    colours rotate the same way, position and scale stay.
    """
    images = scenes.images.clone()
    center, fg, bg = scenes.center.clone(), scenes.foreground.clone(), scenes.background.clone()
    size = images.shape[-1]
    if kind == "flip":
        images = images.flip(-1)
        center[:, 0] = size - center[:, 0]
    elif kind == "shift":
        direction = torch.where(center[:, 0] < size / 2, 1, -1)
        out = torch.empty_like(images)
        for d in (1, -1):
            sel = direction == d
            if sel.any():
                x = images[sel].float()
                pad = (shift, 0) if d == 1 else (0, shift)
                x = F.pad(x, (*pad, 0, 0), mode="replicate")
                out[sel] = (x[..., :size] if d == 1 else x[..., shift:]).to(images.dtype)
        images = out
        center[:, 0] = center[:, 0] + direction * shift
    elif kind == "recolour":
        images = images[:, [1, 2, 0]]
        fg, bg = fg[:, [1, 2, 0]], bg[:, [1, 2, 0]]
    else:
        raise ValueError(f"kind must be one of flip, shift, recolour, not {kind!r}")
    return Scenes(images, scenes.labels.clone(), fg, bg, center, scenes.scale.clone(), scenes.recipe)


IMAGE_MANIPULATIONS = ("flip", "shift", "recolour")
CHANGED_FACTORS = {"flip": ("center",), "shift": ("center",), "recolour": ("foreground", "background")}


# --- misclassified images: does the reconstruction resemble the input or the predicted class? ------
def class_prototype_distances(recon: torch.Tensor, originals: torch.Tensor, classes: torch.Tensor,
                              prototypes: dict[int, torch.Tensor]) -> dict[str, torch.Tensor]:
    """RMS pixel distances of each reconstruction to its input and to real prototypes of ``classes``.

    ``prototypes[c]``: real training images of class ``c`` (M, 3, S, S), float in [0, 1] or uint8
    (converted per image as ``float() / 255``: 1000 ImageNet classes of prototypes stay a quarter
    of the memory). Returns per image the distance to the input, the mean and the minimum distance
    to the prototypes of its class in ``classes`` (e.g. the predicted class); NaN for an image
    whose class has no prototype.
    """
    def rms(a, b):
        return (a - b).pow(2).flatten(-3).mean(-1).sqrt()

    to_input = rms(recon, originals)
    mean_d, min_d = torch.empty(len(recon)), torch.empty(len(recon))
    for i, c in enumerate(classes.tolist()):
        protos = prototypes.get(c)
        if protos is None or len(protos) == 0:
            mean_d[i] = min_d[i] = float("nan")
            continue
        d = rms(recon[i:i + 1], protos.float() / 255.0 if protos.dtype == torch.uint8 else protos)
        mean_d[i], min_d[i] = d.mean(), d.min()
    return {"to_input": to_input, "to_prototypes_mean": mean_d, "to_prototypes_min": min_d}
