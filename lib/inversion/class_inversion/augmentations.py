"""The random input transformations of Plug-In Inversion (Ghiasi et al. 2022, section 3).

Every transform is a small :class:`torch.nn.Module` whose ``forward(x, generator)`` takes a
batch ``(N, C, H, W)`` and an explicit :class:`torch.Generator` (on the batch's device), is
differentiable with respect to ``x`` and draws all its randomness from the generator: the same
seed gives the same output on the same device. They act on many images at once, each image
getting its own random draw, so one batch can hold the copies of many inversion targets.

* :class:`Jitter` - a random circular shift of up to ``max_shift`` pixels (PII: S/7).
* :class:`Flip` - a random horizontal flip (DeepInversion; PII's code has it but does not use it).
* :class:`Ensemble` - B copies of every image (PII "ensembling", section 3.3).
* :class:`ColorShift` - ``x' = sigma * x + mu``, ``mu ~ U(-a, a)``, ``sigma = exp(U(-b, b))`` per
  image and channel, resampled at every call (PII section 3.2, Eq. 1).
* :func:`zoom_stages` and :func:`grow` - the centering / zoom schedule (PII section 3.1): the
  image is optimized at growing sizes 2S/8, 3S/8, ..., S; at each new stage the previous image
  is upsampled bilinearly and pasted in the centre of fresh uniform noise.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..kernels import pii_augment_random


def _check_batch(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected a batch of images (N, C, H, W), got shape {tuple(x.shape)}")


def _uniform(shape: Sequence[int], low: float, high: float, generator: torch.Generator,
             like: torch.Tensor) -> torch.Tensor:
    u = torch.rand(*shape, generator=generator, device=generator.device, dtype=like.dtype)
    return (low + (high - low) * u).to(like.device)


class Transform(nn.Module):
    """Base class: ``forward(x, generator)`` returns a transformed batch (maybe with more images)."""

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class Jitter(Transform):
    """Random circular shift (``torch.roll``) of each image by up to ``max_shift`` pixels in x and y."""

    def __init__(self, max_shift: int):
        super().__init__()
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, not {max_shift}")
        self.max_shift = int(max_shift)

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_batch(x)
        if self.max_shift == 0:
            return x
        n, c, h, w = x.shape
        shifts = torch.randint(-self.max_shift, self.max_shift + 1, (n, 2), generator=generator,
                               device=generator.device).to(x.device)
        # a per-image roll as one gather: output pixel (i, j) reads input pixel (i - dy, j - dx)
        rows = (torch.arange(h, device=x.device).view(1, h) - shifts[:, :1]) % h
        cols = (torch.arange(w, device=x.device).view(1, w) - shifts[:, 1:]) % w
        index = (rows.view(n, 1, h, 1) * w + cols.view(n, 1, 1, w)).expand(n, c, h, w)
        return x.flatten(2).gather(2, index.reshape(n, c, h * w)).view(n, c, h, w)

    def extra_repr(self) -> str:
        return f"max_shift={self.max_shift}"


class Flip(Transform):
    """Horizontal flip of each image with probability ``p``."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], not {p}")
        self.p = p

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_batch(x)
        flip = torch.rand(x.shape[0], generator=generator, device=generator.device).to(x.device) < self.p
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Ensemble(Transform):
    """``copies`` consecutive copies of every image: (N, ...) -> (N * copies, ...), image-major."""

    def __init__(self, copies: int):
        super().__init__()
        if copies < 1:
            raise ValueError(f"copies must be >= 1, not {copies}")
        self.copies = int(copies)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_batch(x)
        return x if self.copies == 1 else x.repeat_interleave(self.copies, dim=0)

    def extra_repr(self) -> str:
        return f"copies={self.copies}"


class ColorShift(Transform):
    """PII's ColorShift (Eq. 1): ``sigma * x + mu`` per image and channel, redrawn every call.

    ``mu ~ U(-mean_shift, mean_shift)`` and ``sigma = exp(U(-log_scale, log_scale))``; the paper
    and its code use 1 for both. Applied to the image in [0, 1] before the model's normalization.
    """

    def __init__(self, mean_shift: float = 1.0, log_scale: float = 1.0):
        super().__init__()
        if mean_shift < 0 or log_scale < 0:
            raise ValueError("ColorShift strengths must be >= 0")
        self.mean_shift, self.log_scale = float(mean_shift), float(log_scale)

    def sample(self, n: int, channels: int, generator: torch.Generator, like: torch.Tensor):
        """The random ``(mu, sigma)`` of one call, each of shape (n, channels, 1, 1)."""
        mu = _uniform((n, channels, 1, 1), -self.mean_shift, self.mean_shift, generator, like)
        sigma = _uniform((n, channels, 1, 1), -self.log_scale, self.log_scale, generator, like).exp()
        return mu, sigma

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_batch(x)
        if self.mean_shift == 0 and self.log_scale == 0:
            return x
        mu, sigma = self.sample(x.shape[0], x.shape[1], generator, x)
        return sigma * x + mu

    def extra_repr(self) -> str:
        return f"mean_shift={self.mean_shift}, log_scale={self.log_scale}"


class PIIAugment(Transform):
    """Jitter -> Ensemble -> ColorShift in one call: the same draws and result as the three
    transforms in a row, computed by :func:`inversion.kernels.pii_augment` (one fused Triton
    kernel on CUDA with its own backward; the same torch operations elsewhere)."""

    def __init__(self, max_shift: int, copies: int, mean_shift: float = 1.0, log_scale: float = 1.0):
        super().__init__()
        self.jitter, self.ensemble = Jitter(max_shift), Ensemble(copies)
        self.color_shift = ColorShift(mean_shift, log_scale)      # validates the strengths

    @property
    def max_shift(self) -> int:
        """The jitter range in pixels."""
        return self.jitter.max_shift

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_batch(x)
        return pii_augment_random(x, self.ensemble.copies, self.jitter.max_shift, self.color_shift.mean_shift,
                                  self.color_shift.log_scale, generator)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize to ``size`` x ``size`` (identity when already that size)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def zoom_stages(size: int, stages: int = 7) -> list[int]:
    """PII's zoom schedule: ``stages`` sizes growing linearly to ``size``.

    With the paper's 7 stages the sizes are 2S/8, 3S/8, ..., 8S/8 (S=224: 56, 84, ..., 224;
    S=32: 8, 12, ..., 32). One stage means no zoom (optimize at full size throughout).
    """
    if stages < 1 or size < 1:
        raise ValueError(f"need stages >= 1 and size >= 1, got stages={stages}, size={size}")
    return [max(1, round(size * (k + 2) / (stages + 1))) for k in range(stages)]


def grow(previous: torch.Tensor | None, size: int, border: int, n: int, generator: torch.Generator,
         channels: int = 3) -> torch.Tensor:
    """The starting image of a zoom stage: fresh uniform noise of ``size`` with the previous image,
    upsampled bilinearly to ``size - 2 * border``, pasted in its centre (``border=0``: a pure zoom).

    ``previous=None`` (first stage) gives pure noise in [0, 1].
    """
    out = torch.rand(n, channels, size, size, generator=generator, device=generator.device)
    if previous is None:
        return out
    out = out.to(previous.device, previous.dtype)
    inner = size - 2 * border
    if inner < 1:
        raise ValueError(f"border {border} leaves no room at size {size}")
    start = border
    out[:, :, start:start + inner, start:start + inner] = resize(previous.detach(), inner)
    return out


def default_jitter(size: int) -> int:
    """PII's jitter range: S/7 pixels (32 px at 224, as in the authors' code; 5 px at 32)."""
    return max(0, round(size / 7))
