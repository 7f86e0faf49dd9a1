"""Plug-In Inversion's per-step augmentation as one function: jitter -> ensemble -> ColorShift.

PII (Ghiasi et al. 2022, section 3) transforms the image at every step: one random circular shift
per image (jitter), B copies of every image (ensembling, section 3.3), then ColorShift per copy and
channel (section 3.2, Eq. 1). In :mod:`inversion.class_inversion` these are three modules
(``Jitter``, ``Ensemble``, ``ColorShift``) whose composition is several torch ops and, in the
backward pass, a sum over copies of shifted, scaled gradients. :func:`pii_augment` is that
composition as one function, for given random parameters:

    y[n * B + b, c, i, j] = sigma[n * B + b, c] * x[n, c, (i - dy) mod H, (j - dx) mod W] + mu[n * B + b, c]

with ``(dy, dx) = shifts[n]`` (one shift per image, as ``Jitter`` before ``Ensemble``) or
``shifts[n * B + b]`` (one shift per copy), i.e. ``torch.roll(x[n], (dy, dx), dims=(-2, -1))``. Copies
are image-major (``repeat_interleave``): the B copies of image n are rows n*B .. n*B+B-1.
``shifts=None`` means no shift; ``mu=None`` and ``sigma=None`` mean no ColorShift (both or neither).

On CUDA (``backend="auto"``) it runs two Triton kernels inside an autograd ``Function``: the forward
writes the N*B copies straight from the N images (no intermediate shifted or repeated tensor), the
backward reduces the copies' gradients into the image's gradient,
``dx[n, c, i, j] = sum_b sigma[nb, c] * dy[nb, c, (i + dy) mod H, (j + dx) mod W]``, and, only when
``mu`` or ``sigma`` require gradients, into ``dmu = sum_ij dy`` and ``dsigma = sum_ij dy * x_shifted``.
Elsewhere it runs :func:`pii_augment_reference`, the exact op sequence of
``Jitter``, ``Ensemble`` and ``ColorShift`` applied in turn, so switching to :func:`pii_augment` keeps results
bit-identical on CPU.

:func:`draw_pii_parameters` draws ``(shifts, mu, sigma)`` from a generator in the same order and
with the same calls as those three modules, so ``pii_augment(x, *draw_pii_parameters(...), copies=B)``
gives the same images as the module composition for the same generator state, and leaves the
generator in the same state.
"""
from __future__ import annotations

import torch

from .backend import resolve


def draw_pii_parameters(x: torch.Tensor, copies: int, max_shift: int, mean_shift: float, log_scale: float,
                        generator: torch.Generator):
    """``(shifts, mu, sigma)`` of one PII step for images ``x`` (N, C, H, W), drawn from ``generator``.

    Exactly the draws of ``Jitter(max_shift)``, ``Ensemble(copies)`` and
    ``ColorShift(mean_shift, log_scale)`` applied in that order: ``shifts`` (N, 2) integer
    ``(dy, dx)`` in ``[-max_shift, max_shift]`` (None when ``max_shift == 0``); ``mu`` and
    ``sigma`` (N * copies, C, 1, 1) with ``mu ~ U(-mean_shift, mean_shift)`` and
    ``sigma = exp(U(-log_scale, log_scale))`` (both None when both strengths are 0).
    """
    _check_images(x)
    if copies < 1 or max_shift < 0 or mean_shift < 0 or log_scale < 0:
        raise ValueError("need copies >= 1 and max_shift, mean_shift, log_scale >= 0")
    n, c = x.shape[:2]
    shifts = None
    if max_shift > 0:
        shifts = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator,
                               device=generator.device).to(x.device)
    mu = sigma = None
    if not (mean_shift == 0 and log_scale == 0):
        shape = (n * copies, c, 1, 1)
        mu = _uniform(shape, -float(mean_shift), float(mean_shift), generator, x)
        sigma = _uniform(shape, -float(log_scale), float(log_scale), generator, x).exp()
    return shifts, mu, sigma


def _uniform(shape, low: float, high: float, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    u = torch.rand(*shape, generator=generator, device=generator.device, dtype=like.dtype)
    return (low + (high - low) * u).to(like.device)


def _check_images(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected a batch of images (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"images must be floating point, got {x.dtype}")


def _check(x: torch.Tensor, shifts: torch.Tensor | None, mu: torch.Tensor | None, sigma: torch.Tensor | None,
           copies: int) -> None:
    _check_images(x)
    n, c = x.shape[:2]
    if int(copies) != copies or copies < 1:
        raise ValueError(f"copies must be an integer >= 1, not {copies}")
    if shifts is not None:
        if shifts.dim() != 2 or shifts.shape[1] != 2 or shifts.shape[0] not in (n, n * copies):
            raise ValueError(f"shifts must be (N, 2) = {(n, 2)} or (N * copies, 2) = {(n * copies, 2)}, "
                             f"got {tuple(shifts.shape)}")
        if shifts.is_floating_point() or shifts.is_complex():
            raise TypeError(f"shifts must be integers, got {shifts.dtype}")
    if (mu is None) != (sigma is None):
        raise ValueError("pass both mu and sigma (ColorShift) or neither")
    for name, t in (("mu", mu), ("sigma", sigma)):
        if t is not None and t.numel() != n * copies * c:
            raise ValueError(f"{name} must be (N * copies, C) or (N * copies, C, 1, 1) with "
                             f"N * copies = {n * copies}, C = {c}; got {tuple(t.shape)}")
    devices = {t.device for t in (x, shifts, mu, sigma) if t is not None}
    if len(devices) > 1:
        raise ValueError(f"all tensors must be on one device, got {sorted(map(str, devices))}")


def _roll(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Per-image ``torch.roll`` by ``shifts[n] = (dy, dx)`` as one gather (``Jitter``'s op)."""
    n, c, h, w = x.shape
    rows = (torch.arange(h, device=x.device).view(1, h) - shifts[:, :1]) % h
    cols = (torch.arange(w, device=x.device).view(1, w) - shifts[:, 1:]) % w
    index = (rows.view(n, 1, h, 1) * w + cols.view(n, 1, 1, w)).expand(n, c, h, w)
    return x.flatten(2).gather(2, index.reshape(n, c, h * w)).view(n, c, h, w)


def pii_augment_reference(x: torch.Tensor, shifts: torch.Tensor | None, mu: torch.Tensor | None,
                          sigma: torch.Tensor | None, copies: int) -> torch.Tensor:
    """Pure-torch :func:`pii_augment`: the ops of ``Jitter`` -> ``Ensemble`` -> ``ColorShift``."""
    _check(x, shifts, mu, sigma, copies)
    n, c = x.shape[:2]
    if shifts is not None and shifts.shape[0] == n:                # jitter, then copies
        x = _roll(x, shifts)
        shifts = None
    if copies > 1:
        x = x.repeat_interleave(copies, dim=0)
    if shifts is not None:                                         # one shift per copy
        x = _roll(x, shifts)
    if mu is not None:
        x = sigma.reshape(-1, c, 1, 1) * x + mu.reshape(-1, c, 1, 1)
    return x


class PIIAugmentFunction(torch.autograd.Function):
    """Autograd wrapper of the Triton forward and backward kernels of :func:`pii_augment`.

    Inputs are normalized by :func:`pii_augment`: ``x`` (N, C, H, W) contiguous, ``shifts``
    (N * copies, 2) int32 in ``[0, H) x [0, W)``, ``mu``, ``sigma`` (N * copies, C) contiguous
    in ``x``'s dtype. Gradients flow to ``x``, ``mu`` and ``sigma``.
    """

    @staticmethod
    def forward(ctx, x, shifts, mu, sigma, copies):
        from .triton_kernels import pii_augment_forward_triton
        ctx.save_for_backward(x, shifts, sigma)
        ctx.copies = copies
        return pii_augment_forward_triton(x, shifts, mu, sigma, copies)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        from .triton_kernels import pii_augment_backward_triton
        x, shifts, sigma = ctx.saved_tensors
        need_x, _, need_mu, need_sigma, _ = ctx.needs_input_grad
        grad_x, grad_mu, grad_sigma = pii_augment_backward_triton(
            grad.contiguous(), x, shifts, sigma, ctx.copies, need_x, need_mu, need_sigma)
        return grad_x, None, grad_mu, grad_sigma, None


def pii_augment(x: torch.Tensor, shifts: torch.Tensor | None, mu: torch.Tensor | None,
                sigma: torch.Tensor | None, copies: int, *, backend: str = "auto") -> torch.Tensor:
    """The ``N * copies`` augmented copies of images ``x`` (N, C, H, W); see the module docstring.

    Args:
        x: images (N, C, H, W), any float dtype (the output has it too).
        shifts: integer (dy, dx) per image (N, 2) or per copy (N * copies, 2); None: no jitter.
        mu, sigma: ColorShift offset and scale per copy and channel, (N * copies, C) or
            (N * copies, C, 1, 1); None for both: no ColorShift.
        copies: B, the number of copies of every image (image-major order).
        backend: ``"auto"`` | ``"torch"`` | ``"triton"`` (:mod:`inversion.kernels.backend`).
    """
    _check(x, shifts, mu, sigma, copies)
    tensors = [t for t in (x, shifts, mu, sigma) if t is not None]
    if resolve(backend, *tensors) == "torch":
        return pii_augment_reference(x, shifts, mu, sigma, copies)
    n, c, h, w = x.shape
    copies = int(copies)
    if shifts is None:
        shifts = torch.zeros(n * copies, 2, dtype=torch.int32, device=x.device)
    else:
        if shifts.shape[0] == n:
            shifts = shifts.repeat_interleave(copies, dim=0)
        sizes = torch.tensor([h, w], device=shifts.device, dtype=shifts.dtype)
        shifts = torch.remainder(shifts, sizes).to(torch.int32).contiguous()
    if mu is None:
        mu = torch.zeros(n * copies, c, dtype=x.dtype, device=x.device)
        sigma = torch.ones(n * copies, c, dtype=x.dtype, device=x.device)
    mu = mu.reshape(n * copies, c).to(x.dtype).contiguous()
    sigma = sigma.reshape(n * copies, c).to(x.dtype).contiguous()
    return PIIAugmentFunction.apply(x.contiguous(), shifts, mu, sigma, copies)


def pii_augment_random(x: torch.Tensor, copies: int, max_shift: int, mean_shift: float, log_scale: float,
                       generator: torch.Generator, *, backend: str = "auto") -> torch.Tensor:
    """One PII step's augmentation with fresh random parameters: the drop-in for
    ``Jitter(max_shift)``, ``Ensemble(copies)`` and ``ColorShift(mean_shift, log_scale)`` applied in turn
    with one generator
    (same generator draws, same result)."""
    shifts, mu, sigma = draw_pii_parameters(x, copies, max_shift, mean_shift, log_scale, generator)
    return pii_augment(x, shifts, mu, sigma, copies, backend=backend)
