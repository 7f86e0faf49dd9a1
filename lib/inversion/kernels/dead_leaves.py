"""Rendering the dead-leaves model: K occluding discs per image, in painter's order.

Zero-shot inversion (Dong et al. 2021, section 3.3) trains its inverse on synthesized images only;
the dead-leaves model (Lee, Mumford & Huang 2001) is one of the candidates the study compares. The
sampling of the leaves (radius law, colours, how many) stays with the caller
(:mod:`inversion.zeroshot.synthetic`); this module only draws given discs:

    image[n, :, i, j] = colors[n, k*]   where k* = the LAST k with
                        (j + 0.5 - centers[n, k, 0])**2 + (i + 0.5 - centers[n, k, 1])**2 <= radii[n, k]**2
    image[n, :, i, j] = background[n]   where no disc covers the pixel centre.

Pixel (i, j) (row, column) has its centre at x = j + 0.5, y = i + 0.5, in pixels; ``centers[..., 0]``
is x (column direction), ``centers[..., 1]`` is y (row direction). Later discs cover earlier ones
(painter's order: disc 0 is painted first, disc K-1 is on top). A vectorized torch version
would need an (N, K, H, W) mask (64 x 48 x 224 x 224 booleans = 154 MB, and int64 orders 8x that);
the Triton kernel runs one program per tile of pixels that loops over the K discs and keeps only the
index of the topmost disc so far, so memory is the output alone.

``render_discs(..., backend="auto")`` picks the kernel on CUDA (when Triton imports) and the
reference elsewhere (:mod:`.backend`). Both compute the covering test with the same float
operations in the same order (the kernel is compiled without fused multiply-adds), so they agree
exactly, not only to a tolerance.
"""
from __future__ import annotations

import torch

from .backend import resolve

#: The reference tests discs in chunks whose (N, chunk, H, W) mask has at most this many elements.
REFERENCE_CHUNK_ELEMENTS = 1 << 24


def _check(centers: torch.Tensor, radii: torch.Tensor, colors: torch.Tensor, background: torch.Tensor,
           height: int, width: int) -> tuple[int, int, int]:
    if centers.dim() != 3 or centers.shape[-1] != 2:
        raise ValueError(f"centers must be (N, K, 2) (x, y in pixels), got {tuple(centers.shape)}")
    n, k, _ = centers.shape
    if tuple(radii.shape) != (n, k):
        raise ValueError(f"radii must be (N, K) = {(n, k)}, got {tuple(radii.shape)}")
    if colors.dim() != 3 or tuple(colors.shape[:2]) != (n, k):
        raise ValueError(f"colors must be (N, K, C) with (N, K) = {(n, k)}, got {tuple(colors.shape)}")
    c = colors.shape[-1]
    if tuple(background.shape) != (n, c):
        raise ValueError(f"background must be (N, C) = {(n, c)}, got {tuple(background.shape)}")
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"height and width must be >= 1, got {height} x {width}")
    if not (centers.is_floating_point() and radii.is_floating_point() and colors.is_floating_point()
            and background.is_floating_point()):
        raise TypeError("centers, radii, colors and background must be floating-point tensors")
    devices = {t.device for t in (centers, radii, colors, background)}
    if len(devices) > 1:
        raise ValueError(f"all parameters must be on one device, got {sorted(map(str, devices))}")
    return n, k, c


def render_discs_reference(centers: torch.Tensor, radii: torch.Tensor, colors: torch.Tensor,
                           background: torch.Tensor, height: int, width: int,
                           chunk_elements: int = REFERENCE_CHUNK_ELEMENTS) -> torch.Tensor:
    """Pure-torch :func:`render_discs`: the discs are tested in chunks, so the mask held at once is
    (N, chunk, H, W) with ``N * chunk * H * W <= chunk_elements`` (at least one disc per chunk)."""
    n, k, c = _check(centers, radii, colors, background, height, width)
    device, coord = centers.device, centers.dtype
    xx = (torch.arange(width, device=device) + 0.5).to(coord).view(1, 1, 1, width)
    yy = (torch.arange(height, device=device) + 0.5).to(coord).view(1, 1, height, 1)
    top = torch.full((n, height, width), -1, dtype=torch.long, device=device)
    step = max(1, int(chunk_elements) // max(1, n * height * width))
    r2 = radii.to(coord) ** 2
    for start in range(0, k, step):
        stop = min(k, start + step)
        cx = centers[:, start:stop, 0, None, None]
        cy = centers[:, start:stop, 1, None, None]
        d2 = (xx - cx) ** 2 + (yy - cy) ** 2
        inside = d2 <= r2[:, start:stop, None, None]                       # (n, chunk, H, W)
        order = torch.arange(start, stop, device=device).view(1, -1, 1, 1)
        chunk_top = torch.where(inside, order, torch.full_like(order, -1)).amax(dim=1)
        top = torch.where(chunk_top >= 0, chunk_top, top)
    index = top.clamp_min(0).view(n, height * width, 1).expand(n, height * width, c)
    image = torch.gather(colors, 1, index).view(n, height, width, c).permute(0, 3, 1, 2)
    image = torch.where((top >= 0).unsqueeze(1), image, background.to(colors.dtype).view(n, c, 1, 1))
    return image.contiguous()


def render_discs(centers: torch.Tensor, radii: torch.Tensor, colors: torch.Tensor, background: torch.Tensor,
                 height: int, width: int, *, backend: str = "auto") -> torch.Tensor:
    """Dead-leaves images (N, C, height, width) from K discs per image, later discs on top.

    Args:
        centers: (N, K, 2) disc centres (x, y) in pixels; pixel (i, j) has its centre at
            (j + 0.5, i + 0.5).
        radii: (N, K) radii in pixels; a pixel is covered when the distance from its centre to the
            disc's centre is <= the radius.
        colors: (N, K, C) colour of each disc (any C >= 1; the output has the dtype of ``colors``).
        background: (N, C) colour of pixels no disc covers.
        height, width: output size in pixels.
        backend: ``"auto"`` | ``"torch"`` | ``"triton"`` (:mod:`inversion.kernels.backend`).

    The random parameters are drawn by the caller (e.g. with a seeded :class:`torch.Generator`), so
    the same draw gives the same image on every backend.
    """
    _check(centers, radii, colors, background, height, width)
    if resolve(backend, centers, radii, colors, background) == "torch":
        return render_discs_reference(centers, radii, colors, background, height, width)
    from .triton_kernels import render_discs_triton
    return render_discs_triton(centers, radii, colors, background, int(height), int(width))
