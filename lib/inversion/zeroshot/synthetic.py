"""Synthesized training inputs for zero-shot inversion: no real image of the task is ever used.

The paper trains its inverse on synthesized data without fully specifying it; this module offers
the candidates the study compares (``KINDS``), all images in [0, 1]:

* ``gaussian`` - i.i.d. Gaussian pixels around a random mean colour, random contrast;
* ``uniform`` - i.i.d. uniform pixels;
* ``lowpass`` - white noise blurred by a Gaussian of random width (0.5-4 px), random colour/contrast;
* ``pink`` - "natural-like" noise with a 1/f^a amplitude spectrum (a ~ U(0.8, 2)), random phase,
  colour channels mixed by a random matrix;
* ``dead_leaves`` - occluding discs of shaded colour with power-law radii of 2-16 px at 32 px (the
  dead-leaves model of natural-image statistics);
* ``shapes`` - random rectangles, ellipses and triangles of shaded colour over 1/f noise;
* ``mix`` - each image drawn from one of the structured kinds (``MIX_KINDS``: pink, dead leaves,
  shapes);
* ``deepinversion`` - images synthesized from the frozen classifier itself by DeepInversion
  (``inversion.class_inversion``), a fixed pool that is then flipped and shifted at random.

Every source carries ``is_real = False``; :class:`RealImages` (the upper-bound baseline only) has
``is_real = True``, and :func:`assert_synthetic` refuses it. Training entry points call it.
Images are rendered at the requested size on the requested device, from a generator made by
:func:`make_generator` on that device.
"""
from __future__ import annotations

import math

import torch

from ..kernels import SHAPES, render_discs, render_shapes

NOISE_KINDS = ("gaussian", "uniform", "lowpass", "pink", "dead_leaves", "shapes")
KINDS = NOISE_KINDS + ("mix", "deepinversion")


class RealDataError(RuntimeError):
    """Raised when real images reach a training path that must be zero-shot."""


class ImageSource:
    """Batches of training inputs in [0, 1]; ``is_real`` says whether they are real task images."""

    is_real: bool = False
    kind: str = ""

    def sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:  # pragma: no cover
        """``n`` images on the generator's device (see :func:`make_generator`)."""
        raise NotImplementedError


def make_generator(seed: int, device="cpu") -> torch.Generator | None:
    """A seeded generator on ``device`` (random numbers are drawn where they are used); ``None`` on
    PyTorch's ``meta`` device, which has no generator (shapes only)."""
    device = torch.device(device)
    if device.type == "meta":
        return None
    return torch.Generator(device=device).manual_seed(seed)


def _device(g: torch.Generator | None, device=None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return g.device if g is not None else torch.device("cpu")


def _rand(*shape, g, device) -> torch.Tensor:
    return torch.rand(*shape, generator=g, device=device)


def _randn(*shape, g, device) -> torch.Tensor:
    return torch.randn(*shape, generator=g, device=device)


def _random_colour(n: int, g, device, low: float = 0.1, high: float = 0.9) -> torch.Tensor:
    return low + (high - low) * _rand(n, 3, 1, 1, g=g, device=device)


def _standardize(x: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(dim=(1, 2, 3), keepdim=True)
    return x / x.flatten(1).std(dim=1).clamp_min(1e-6).view(-1, 1, 1, 1)


def gaussian(n: int, size: int, g: torch.Generator | None, device=None) -> torch.Tensor:
    device = _device(g, device)
    sigma = 0.05 + 0.35 * _rand(n, 1, 1, 1, g=g, device=device)
    return (_random_colour(n, g, device) + sigma * _randn(n, 3, size, size, g=g, device=device)).clamp(0, 1)


def uniform(n: int, size: int, g: torch.Generator | None, device=None) -> torch.Tensor:
    return _rand(n, 3, size, size, g=g, device=_device(g, device))


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur in the Fourier domain (circular), sigma in pixels, shape (N,)."""
    size = x.shape[-1]
    f = torch.fft.fftfreq(size, device=x.device)
    r2 = f[None, :, None] ** 2 + f[None, None, :] ** 2
    kernel = torch.exp(-2 * math.pi ** 2 * sigma.view(-1, 1, 1) ** 2 * r2).unsqueeze(1)
    return torch.fft.ifft2(torch.fft.fft2(x) * kernel).real


def lowpass(n: int, size: int, g: torch.Generator | None, device=None) -> torch.Tensor:
    device = _device(g, device)
    sigma = 0.5 + 3.5 * _rand(n, g=g, device=device)
    x = _standardize(_blur(_randn(n, 3, size, size, g=g, device=device), sigma))
    contrast = 0.1 + 0.3 * _rand(n, 1, 1, 1, g=g, device=device)
    return (_random_colour(n, g, device) + contrast * x).clamp(0, 1)


def _one_over_f(n: int, size: int, g, device, alpha_low: float = 0.8, alpha_high: float = 2.0) -> torch.Tensor:
    """Standardized noise with a 1/f^alpha amplitude spectrum (alpha ~ U), correlated colour channels."""
    alpha = alpha_low + (alpha_high - alpha_low) * _rand(n, g=g, device=device)
    f = torch.fft.fftfreq(size, device=device)
    radius = (f[:, None] ** 2 + f[None, :] ** 2).sqrt().clamp_min(1.0 / size)
    amplitude = radius[None] ** (-alpha.view(-1, 1, 1))
    amplitude[:, 0, 0] = 0
    phase = 2 * math.pi * _rand(n, 3, size, size, g=g, device=device)
    x = _standardize(torch.fft.ifft2(amplitude[:, None] * torch.exp(1j * phase)).real)
    mixing = torch.eye(3, device=device) + 0.6 * _randn(n, 3, 3, g=g, device=device)
    return _standardize(torch.einsum("nij,njhw->nihw", mixing, x))


def pink(n: int, size: int, g: torch.Generator | None, device=None) -> torch.Tensor:
    """1/f^a noise (a ~ U(0.8, 2)), the amplitude spectrum of natural images (Field 1987)."""
    device = _device(g, device)
    x = _one_over_f(n, size, g, device)
    contrast = 0.1 + 0.3 * _rand(n, 1, 1, 1, g=g, device=device)
    return (_random_colour(n, g, device) + contrast * x).clamp(0, 1)


def _shading(n: int, layers: int, size: int, g, device, strength: float = 0.3):
    """A flat colour per layer plus a random linear shading gradient along a ramp centred on the
    image: the ``colors``, ``gradients`` and ramp coordinates of :func:`inversion.kernels.render_shapes`."""
    base = _rand(n, layers, 3, g=g, device=device)
    direction = _randn(n, layers, 2, g=g, device=device)
    ramp = torch.linspace(-0.5, 0.5, size, device=device)
    return base, strength * direction, ramp


def dead_leaves(n: int, size: int, g: torch.Generator | None, device=None, discs: int = 40,
                rmin_frac: float = 1 / 16, rmax_frac: float = 1 / 2) -> torch.Tensor:
    """The dead-leaves model (Lee, Mumford & Huang 2001): occluding discs painted in random order,
    radius density p(r) ~ r^-3 truncated to [size/16, size/2] (2-16 px at 32 px), so that most
    leaves span several pixels instead of speckle; each leaf a shaded colour; a pink-noise
    background shows where no leaf falls. Rendered at ``size`` on ``device`` by
    :func:`inversion.kernels.render_discs` (a Triton kernel on CUDA)."""
    device = _device(g, device)
    rmin, rmax = rmin_frac * size, rmax_frac * size
    u = _rand(n, discs, g=g, device=device)
    radius = (rmin ** -2 + u * (rmax ** -2 - rmin ** -2)) ** -0.5     # inverse CDF of p(r) ~ r^-3
    centre = _rand(n, discs, 2, g=g, device=device) * size
    colour, gradient, ramp = _shading(n, discs, size, g, device)
    background = (_random_colour(n, g, device) + 0.15 * _one_over_f(n, size, g, device)).clamp(0, 1)
    image = render_discs(centre, radius, colour, background, size, size, gradients=gradient,
                         ramp_xs=ramp, ramp_ys=ramp)
    return _blur(image, torch.full((n,), 0.5, device=device)).clamp(0, 1)


# the shapes' kind codes in inversion.kernels.SHAPES, in the order ``shapes`` draws them
_SHAPE_CODES = (SHAPES.index("rectangle"), SHAPES.index("ellipse"), SHAPES.index("triangle"))


def shapes(n: int, size: int, g: torch.Generator | None, device=None, count: int = 12) -> torch.Tensor:
    """Random shapes: rotated rectangles, ellipses and triangles of random size (1/8 to 3/4 of the
    image), shaded colours, over a 1/f-noise background; edges and flat regions like objects in a
    photo. Rendered at ``size`` on ``device`` by :func:`inversion.kernels.render_shapes`."""
    device = _device(g, device)
    unit = torch.linspace(0, 1, size, device=device)
    centre = _rand(n, count, 2, g=g, device=device)
    half = (0.06 + 0.32 * _rand(n, count, 2, g=g, device=device))              # half-extents in image units
    angle = math.pi * _rand(n, count, g=g, device=device)
    kind = torch.randint(0, 3, (n, count), generator=g, device=device)
    colour, gradient, ramp = _shading(n, count, size, g, device)
    background = (_random_colour(n, g, device) + 0.2 * _one_over_f(n, size, g, device)).clamp(0, 1)
    codes = torch.tensor(_SHAPE_CODES, device=device)[kind]
    image = render_shapes(centre, half, colour, background, size, size, kinds=codes, angles=angle,
                          gradients=gradient, xs=unit, ys=unit, ramp_xs=ramp, ramp_ys=ramp)
    return _blur(image, torch.full((n,), 0.5, device=device)).clamp(0, 1)


GENERATORS = {"gaussian": gaussian, "uniform": uniform, "lowpass": lowpass, "pink": pink,
              "dead_leaves": dead_leaves, "shapes": shapes}
# what ``mix`` draws from: the structured kinds (edges, flat regions, 1/f spectra), not white noise
MIX_KINDS = ("pink", "dead_leaves", "shapes")


class NoiseSource(ImageSource):
    """Fresh synthesized images of one kind (or ``mix``) at every call, rendered on ``device``."""

    def __init__(self, kind: str, size: int = 32, device="cpu"):
        if kind not in NOISE_KINDS + ("mix",):
            raise ValueError(f"unknown noise kind {kind!r}; choose from {NOISE_KINDS + ('mix',)}")
        self.kind, self.size, self.device = kind, size, torch.device(device)

    def sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        device = self.device
        if self.kind != "mix":
            return GENERATORS[self.kind](n, self.size, generator, device)
        which = torch.randint(len(MIX_KINDS), (n,), generator=generator, device=device)
        if device.type == "meta":
            return torch.empty(n, 3, self.size, self.size, device=device)
        out = torch.empty(n, 3, self.size, self.size, device=device)
        for i, kind in enumerate(MIX_KINDS):
            idx = (which == i).nonzero().flatten()
            if len(idx):
                out[idx] = GENERATORS[kind](len(idx), self.size, generator, device)
        return out


class PoolSource(ImageSource):
    """A fixed pool of synthesized images, sampled with random flips and circular shifts (+-2 px).

    The pool is kept on the device of the generator that samples it (moved on first use)."""

    def __init__(self, images: torch.Tensor, kind: str):
        if images.dim() != 4 or images.min() < 0 or images.max() > 1:
            raise ValueError("pool images must be (N, C, H, W) in [0, 1]")
        self.images, self.kind = images.detach(), kind

    def sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        device = _device(generator)
        if self.images.device != device:
            self.images = self.images.to(device)
        idx = torch.randint(len(self.images), (n,), generator=generator, device=device)
        x = self.images[idx].clone()
        flip = _rand(n, g=generator, device=device) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        shifts = torch.randint(-2, 3, (2,), generator=generator, device=device).tolist()
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
    """Real training images: only for the upper-bound baseline, never for zero-shot training.

    Kept as uint8 on the CPU (a whole training set); each batch is moved to the generator's device."""

    is_real = True
    kind = "real"

    def __init__(self, images: torch.Tensor):
        self.images = images if images.dtype == torch.uint8 else (images.clamp(0, 1) * 255).round().byte()

    def sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        device = _device(generator)
        idx = torch.randint(len(self.images), (n,), generator=generator, device=device)
        return self.images[idx.cpu()].to(device).float() / 255


def make_source(kind: str, size: int = 32, model=None, seed: int = 0, device="cpu",
                pool_size: int = 512, deepinversion_steps: int = 200) -> ImageSource:
    """The synthesized-data source of a kind in :data:`KINDS` (never real data), rendered at ``size``
    (the model's input resolution) on ``device``."""
    if kind == "deepinversion":
        if model is None:
            raise ValueError("deepinversion data is synthesized from the model: pass model=")
        return deepinversion_pool(model, pool_size, seed, device, deepinversion_steps)
    if kind == "real":
        raise RealDataError("real images are not a synthesized-data kind; use RealImages for the baseline")
    return NoiseSource(kind, size, device)


def assert_synthetic(source: ImageSource) -> None:
    """The zero-shot guarantee: refuse any source of real task images."""
    if not isinstance(source, ImageSource):
        raise TypeError(f"expected an ImageSource, got {type(source).__name__}")
    if source.is_real or isinstance(source, RealImages):
        raise RealDataError(f"zero-shot training received real images ({source.kind!r}); "
                            f"only synthesized data is allowed")
