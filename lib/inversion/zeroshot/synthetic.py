"""Synthesized training inputs for zero-shot inversion: no real image of the task is ever used.

The paper trains its inverse on synthesized data without fully specifying it; this module offers
the candidates the study compares (``KINDS``), all images in [0, 1]:

* ``gaussian`` - i.i.d. Gaussian pixels around a random mean colour, random contrast;
* ``uniform`` - i.i.d. uniform pixels;
* ``lowpass`` - white noise blurred by a Gaussian of random width (0.5-4 px), random colour/contrast;
* ``pink`` - "natural-like" noise with a 1/f^a amplitude spectrum (a ~ U(0.8, 2)), random phase,
  colour channels mixed by a random matrix;
* ``dead_leaves`` - occluding discs of random colour with power-law radii (the dead-leaves model
  of natural-image statistics);
* ``mix`` - each image drawn from one of the noise kinds above;
* ``deepinversion`` - images synthesized from the frozen classifier itself by DeepInversion
  (``inversion.class_inversion``), a fixed pool that is then flipped and shifted at random.

Every source carries ``is_real = False``; :class:`RealImages` (the upper-bound baseline only) has
``is_real = True``, and :func:`assert_synthetic` refuses it. Training entry points call it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

NOISE_KINDS = ("gaussian", "uniform", "lowpass", "pink", "dead_leaves")
KINDS = NOISE_KINDS + ("mix", "deepinversion")


class RealDataError(RuntimeError):
    """Raised when real images reach a training path that must be zero-shot."""


class ImageSource:
    """Batches of training inputs in [0, 1]; ``is_real`` says whether they are real task images."""

    is_real: bool = False
    kind: str = ""

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


def _random_colour(n: int, g: torch.Generator, low: float = 0.1, high: float = 0.9) -> torch.Tensor:
    return (low + (high - low) * torch.rand(n, 3, 1, 1, generator=g))


def _standardize(x: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(dim=(1, 2, 3), keepdim=True)
    return x / x.flatten(1).std(dim=1).clamp_min(1e-6).view(-1, 1, 1, 1)


def gaussian(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    sigma = 0.05 + 0.35 * torch.rand(n, 1, 1, 1, generator=g)
    return (_random_colour(n, g) + sigma * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)


def uniform(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=g)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur in the Fourier domain (circular), sigma in pixels, shape (N,)."""
    size = x.shape[-1]
    f = torch.fft.fftfreq(size)
    r2 = f[None, :, None] ** 2 + f[None, None, :] ** 2
    kernel = torch.exp(-2 * math.pi ** 2 * sigma.view(-1, 1, 1) ** 2 * r2).unsqueeze(1)
    return torch.fft.ifft2(torch.fft.fft2(x) * kernel).real


def lowpass(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    sigma = 0.5 + 3.5 * torch.rand(n, generator=g)
    x = _standardize(_blur(torch.randn(n, 3, size, size, generator=g), sigma))
    contrast = 0.1 + 0.3 * torch.rand(n, 1, 1, 1, generator=g)
    return (_random_colour(n, g) + contrast * x).clamp(0, 1)


def pink(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    alpha = 0.8 + 1.2 * torch.rand(n, generator=g)
    f = torch.fft.fftfreq(size)
    radius = (f[:, None] ** 2 + f[None, :] ** 2).sqrt().clamp_min(1.0 / size)
    amplitude = radius[None] ** (-alpha.view(-1, 1, 1))
    amplitude[:, 0, 0] = 0
    phase = 2 * math.pi * torch.rand(n, 3, size, size, generator=g)
    x = _standardize(torch.fft.ifft2(amplitude[:, None] * torch.exp(1j * phase)).real)
    mixing = torch.eye(3) + 0.6 * torch.randn(n, 3, 3, generator=g)  # correlated colour channels
    x = _standardize(torch.einsum("nij,njhw->nihw", mixing, x))
    contrast = 0.1 + 0.3 * torch.rand(n, 1, 1, 1, generator=g)
    return (_random_colour(n, g) + contrast * x).clamp(0, 1)


def dead_leaves(n: int, size: int, g: torch.Generator, discs: int = 48) -> torch.Tensor:
    """Occluding discs, radius density ~ r^-3 between 1 px and half the image (Lee et al. 2001)."""
    rmin, rmax = 1.0, size / 2
    u = torch.rand(n, discs, generator=g)
    radius = (rmin ** -2 + u * (rmax ** -2 - rmin ** -2)) ** -0.5   # inverse CDF of p(r) ~ r^-3
    radius, _ = radius.sort(dim=1, descending=True)                   # big leaves first (background)
    radius[:, 0] = size * 2                                           # a leaf that fills the frame
    centre = torch.rand(n, discs, 2, generator=g) * size
    colour = torch.rand(n, discs, 3, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    d2 = (xx[None, None] - centre[..., 0, None, None]) ** 2 + (yy[None, None] - centre[..., 1, None, None]) ** 2
    inside = d2 <= radius[..., None, None] ** 2                       # (n, discs, H, W)
    order = torch.arange(discs).view(1, -1, 1, 1).expand_as(inside)
    top = torch.where(inside, order, torch.full_like(order, -1)).amax(dim=1)   # last (topmost) disc
    image = torch.gather(colour, 1, top.flatten(1).unsqueeze(-1).expand(-1, -1, 3))
    image = image.view(n, size, size, 3).permute(0, 3, 1, 2)
    return _blur(image, torch.full((n,), 0.5)).clamp(0, 1)


GENERATORS = {"gaussian": gaussian, "uniform": uniform, "lowpass": lowpass, "pink": pink,
              "dead_leaves": dead_leaves}


class NoiseSource(ImageSource):
    """Fresh noise images of one kind (or ``mix``) at every call."""

    def __init__(self, kind: str, size: int = 32):
        if kind not in NOISE_KINDS + ("mix",):
            raise ValueError(f"unknown noise kind {kind!r}; choose from {NOISE_KINDS + ('mix',)}")
        self.kind, self.size = kind, size

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if self.kind != "mix":
            return GENERATORS[self.kind](n, self.size, generator)
        which = torch.randint(len(NOISE_KINDS), (n,), generator=generator)
        out = torch.empty(n, 3, self.size, self.size)
        for i, kind in enumerate(NOISE_KINDS):
            idx = (which == i).nonzero().flatten()
            if len(idx):
                out[idx] = GENERATORS[kind](len(idx), self.size, generator)
        return out


class PoolSource(ImageSource):
    """A fixed pool of synthesized images, sampled with random flips and circular shifts (+-2 px)."""

    def __init__(self, images: torch.Tensor, kind: str):
        if images.dim() != 4 or images.min() < 0 or images.max() > 1:
            raise ValueError("pool images must be (N, C, H, W) in [0, 1]")
        self.images, self.kind = images.detach().cpu(), kind

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(self.images), (n,), generator=generator)
        x = self.images[idx].clone()
        flip = torch.rand(n, generator=generator) < 0.5
        x[flip] = x[flip].flip(-1)
        shifts = torch.randint(-2, 3, (2,), generator=generator).tolist()
        return torch.roll(x, shifts=shifts, dims=(-2, -1))


def deepinversion_pool(model, n: int, seed: int, device="cpu", steps: int = 200, batch: int = 64,
                       progress: bool = False) -> PoolSource:
    """DeepInversion images of the frozen classifier (``inversion.class_inversion.deep_inversion``,
    Yin et al. 2020), classes cycled 0..C-1, ``steps`` Adam steps per batch of ``batch`` images.

    Uses only the model (its BatchNorm running statistics and its class scores): no real data.
    """
    try:
        from ..class_inversion import deep_inversion
    except ImportError as error:  # pragma: no cover - the module ships with the study
        raise ImportError("DeepInversion-style synthesized data needs inversion.class_inversion") from error
    classes = getattr(getattr(model, "config", None), "num_classes", 10)
    images = []
    for start in range(0, n, batch):
        targets = torch.arange(start, min(n, start + batch)) % classes
        out = deep_inversion(model, targets, steps, seed=seed + start, device=device, progress=progress)
        images.append(out.detach().float().cpu().clamp(0, 1))
    return PoolSource(torch.cat(images), "deepinversion")


class RealImages(ImageSource):
    """Real training images: only for the upper-bound baseline, never for zero-shot training."""

    is_real = True
    kind = "real"

    def __init__(self, images: torch.Tensor):
        self.images = images if images.dtype == torch.uint8 else (images.clamp(0, 1) * 255).round().byte()

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(self.images), (n,), generator=generator)
        return self.images[idx].float() / 255


def make_source(kind: str, size: int = 32, model=None, seed: int = 0, device="cpu",
                pool_size: int = 512, deepinversion_steps: int = 200) -> ImageSource:
    """The synthesized-data source of a kind in :data:`KINDS` (never real data)."""
    if kind == "deepinversion":
        if model is None:
            raise ValueError("deepinversion data is synthesized from the model: pass model=")
        return deepinversion_pool(model, pool_size, seed, device, deepinversion_steps)
    if kind == "real":
        raise RealDataError("real images are not a synthesized-data kind; use RealImages for the baseline")
    return NoiseSource(kind, size)


def assert_synthetic(source: ImageSource) -> None:
    """The zero-shot guarantee: refuse any source of real task images."""
    if not isinstance(source, ImageSource):
        raise TypeError(f"expected an ImageSource, got {type(source).__name__}")
    if source.is_real or isinstance(source, RealImages):
        raise RealDataError(f"zero-shot training received real images ({source.kind!r}); "
                            f"only synthesized data is allowed")
