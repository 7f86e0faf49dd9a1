"""Rendering occluding shapes in painter's order: the dead-leaves model and random shapes.

Zero-shot inversion (Dong et al. 2021, section 3.3) trains its inverse on synthesized images only;
the dead-leaves model (Lee, Mumford & Huang 2001: occluding discs) and random shapes (rotated
ellipses, rectangles, triangles) are among the candidates the study compares. The sampling of the
shapes (radius law, colours, how many) stays with the caller (:mod:`inversion.zeroshot.synthetic`);
this module only draws given shapes. With pixel (i, j) (row, column) at coordinates
``(x, y) = (xs[j], ys[i])`` (default: the pixel centre, ``(j + 0.5, i + 0.5)``) and shape k of
image n at centre ``(cx, cy) = centers[n, k]`` with half-extents ``(a, b) = sizes[n, k]``:

    dx, dy = x - cx, y - cy
    u = (cos * dx + sin * dy) * (1 / a);   v = (-sin * dx + cos * dy) * (1 / b)    (cos, sin of angles[n, k])
    disc:       dx * dx + dy * dy <= a * a                 (radius a; angle and b unused)
    ellipse:    u * u + v * v <= 1
    rectangle:  |u| <= 1 and |v| <= 1
    triangle:   -1 <= v <= 1 and |u| <= (1 - v) * 0.5      (base of width 2 at v = -1, apex at v = 1)

A pixel takes the colour of the LAST shape that covers it (painter's order: shape 0 is painted
first, shape K-1 is on top), else the background (a colour per image, or an image):

    image[n, c, i, j] = colors[n, k*, c]                                   (flat), or
                        clamp(colors[n, k*, c] + gradients[n, k*, 0] * ramp_ys[i]
                                               + gradients[n, k*, 1] * ramp_xs[j], 0, 1)   (shaded)

(the shading ramps default to the pixel coordinates ``ys`` and ``xs``).

A vectorized torch version would hold an (N, K, H, W) mask (64 x 40 x 224 x 224 booleans are
128 MB, its float distances and int64 orders 4-8x that, per-layer shaded colours 12x); the Triton kernel runs one program per
tile of pixels that loops over the K shapes and keeps only the index of the topmost shape so far,
then computes that shape's colour: memory is the output alone. The torch reference tests the shapes
in chunks (bounded mask) and colours only the topmost shape, with the same float operations in the
same order as the kernel; the kernel is compiled without fused multiply-adds and the reciprocals,
cosines and sines are computed once in torch, so the two agree bit for bit (checked in the
interpreter).

``render_shapes(..., backend="auto")`` and ``render_discs`` pick the kernel on CUDA (when Triton
imports) and the reference elsewhere (:mod:`.backend`).
"""
from __future__ import annotations

import torch

from .backend import resolve

#: Shape codes of ``kinds``.
SHAPES = ("disc", "ellipse", "rectangle", "triangle")
DISC, ELLIPSE, RECTANGLE, TRIANGLE = range(4)

#: The reference tests shapes in chunks whose (N, chunk, H, W) tensors have at most this many elements.
REFERENCE_CHUNK_ELEMENTS = 1 << 24


def _prepare(centers, sizes, colors, background, height, width, kinds, angles, gradients, xs, ys,
             ramp_xs=None, ramp_ys=None):
    """Validate and normalize: returns the per-shape tensors the reference and the kernel read."""
    if centers.dim() != 3 or centers.shape[-1] != 2:
        raise ValueError(f"centers must be (N, K, 2) (x, y), got {tuple(centers.shape)}")
    n, k, _ = centers.shape
    if sizes.dim() == 2:                                            # one size: a radius
        sizes = sizes.unsqueeze(-1).expand(n, k, 2) if tuple(sizes.shape) == (n, k) else sizes
    if tuple(sizes.shape) != (n, k, 2):
        raise ValueError(f"sizes must be (N, K) radii or (N, K, 2) half-extents with (N, K) = {(n, k)}, "
                         f"got {tuple(sizes.shape)}")
    if colors.dim() != 3 or tuple(colors.shape[:2]) != (n, k):
        raise ValueError(f"colors must be (N, K, C) with (N, K) = {(n, k)}, got {tuple(colors.shape)}")
    c = colors.shape[-1]
    height, width = int(height), int(width)
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height} x {width}")
    if tuple(background.shape) not in ((n, c), (n, c, height, width)):
        raise ValueError(f"background must be (N, C) = {(n, c)} or (N, C, H, W) = {(n, c, height, width)}, "
                         f"got {tuple(background.shape)}")
    for name, t in (("centers", centers), ("sizes", sizes), ("colors", colors), ("background", background)):
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    device, coord = centers.device, centers.dtype
    if kinds is None:
        kinds = torch.zeros(n, k, dtype=torch.int32, device=device)
    if tuple(kinds.shape) != (n, k) or kinds.is_floating_point():
        raise ValueError(f"kinds must be an integer (N, K) = {(n, k)} tensor of codes {dict(enumerate(SHAPES))}")
    # no host sync when compiled; nothing to read on the meta device
    checkable = kinds.numel() and kinds.device.type != "meta" and not torch.compiler.is_compiling()
    if checkable and (int(kinds.min()) < 0 or int(kinds.max()) >= len(SHAPES)):
        raise ValueError(f"kinds must hold codes 0..{len(SHAPES) - 1} ({', '.join(SHAPES)})")
    if angles is None:
        cos = torch.ones(n, k, dtype=coord, device=device)
        sin = torch.zeros(n, k, dtype=coord, device=device)
    else:
        if tuple(angles.shape) != (n, k):
            raise ValueError(f"angles must be (N, K) = {(n, k)}, got {tuple(angles.shape)}")
        cos, sin = angles.to(coord).cos(), angles.to(coord).sin()
    if gradients is not None and tuple(gradients.shape) != (n, k, 2):
        raise ValueError(f"gradients must be (N, K, 2) = {(n, k, 2)}, got {tuple(gradients.shape)}")
    xs = (torch.arange(width, device=device) + 0.5).to(coord) if xs is None else xs.to(coord)
    ys = (torch.arange(height, device=device) + 0.5).to(coord) if ys is None else ys.to(coord)
    ramp_xs = xs if ramp_xs is None else ramp_xs.to(coord)
    ramp_ys = ys if ramp_ys is None else ramp_ys.to(coord)
    if tuple(xs.shape) != (width,) or tuple(ys.shape) != (height,):
        raise ValueError(f"xs must be (W,) = ({width},) and ys (H,) = ({height},)")
    if tuple(ramp_xs.shape) != (width,) or tuple(ramp_ys.shape) != (height,):
        raise ValueError(f"ramp_xs must be (W,) = ({width},) and ramp_ys (H,) = ({height},)")
    sizes = sizes.to(coord)
    params = dict(centers=centers, half=sizes, inverse=1 / sizes, cos=cos, sin=sin, kinds=kinds.to(torch.int32),
                  colors=colors, background=background.to(colors.dtype),
                  gradients=None if gradients is None else gradients.to(colors.dtype), xs=xs, ys=ys,
                  ramp_xs=ramp_xs, ramp_ys=ramp_ys)
    devices = {t.device for t in params.values() if t is not None}
    if len(devices) > 1:
        raise ValueError(f"all tensors must be on one device, got {sorted(map(str, devices))}")
    return params, (n, k, c, height, width)


def _covered(p: dict, start: int, stop: int) -> torch.Tensor:
    """(N, stop - start, H, W) booleans: which pixels shapes start..stop-1 cover (kernel's op order)."""
    x = p["xs"].view(1, 1, 1, -1)
    y = p["ys"].view(1, 1, -1, 1)
    sl = slice(start, stop)
    dx = x - p["centers"][:, sl, 0, None, None]
    dy = y - p["centers"][:, sl, 1, None, None]
    kinds = p["kinds"][:, sl]
    a = p["half"][:, sl, 0, None, None]
    inside = dx * dx + dy * dy <= a * a                                                   # disc
    # a host sync only in eager mode on a real device (compiled and meta tensors take every branch)
    if torch.compiler.is_compiling() or kinds.device.type == "meta" or bool((kinds != DISC).any()):
        cos, sin = p["cos"][:, sl, None, None], p["sin"][:, sl, None, None]
        u = (cos * dx + sin * dy) * p["inverse"][:, sl, 0, None, None]
        v = (-sin * dx + cos * dy) * p["inverse"][:, sl, 1, None, None]
        ellipse = u * u + v * v <= 1
        rectangle = (u.abs() <= 1) & (v.abs() <= 1)
        triangle = (v >= -1) & (v <= 1) & (u.abs() <= (1 - v) * 0.5)
        kind = kinds[..., None, None]
        inside = torch.where(kind == ELLIPSE, ellipse, inside)
        inside = torch.where(kind == RECTANGLE, rectangle, inside)
        inside = torch.where(kind == TRIANGLE, triangle, inside)
    return inside


def _colour(p: dict, top: torch.Tensor, n: int, c: int, height: int, width: int) -> torch.Tensor:
    """The image from the topmost-shape index ``top`` (N, H, W), -1 where no shape covers."""
    hw = height * width
    safe = top.clamp_min(0).view(n, hw)
    image = torch.gather(p["colors"], 1, safe.unsqueeze(-1).expand(n, hw, c))             # (n, hw, c)
    if p["gradients"] is not None:
        grad = torch.gather(p["gradients"], 1, safe.unsqueeze(-1).expand(n, hw, 2))
        ys = p["ramp_ys"].to(image.dtype).view(height, 1).expand(height, width).reshape(1, hw, 1)
        xs = p["ramp_xs"].to(image.dtype).view(1, width).expand(height, width).reshape(1, hw, 1)
        image = (image + grad[..., :1] * ys + grad[..., 1:] * xs).clamp(0, 1)
    image = image.view(n, height, width, c).permute(0, 3, 1, 2)
    background = p["background"]
    if background.dim() == 2:
        background = background.view(n, c, 1, 1)
    return torch.where((top >= 0).unsqueeze(1), image, background).contiguous()


def render_shapes_reference(centers, sizes, colors, background, height, width, *, kinds=None, angles=None,
                            gradients=None, xs=None, ys=None, ramp_xs=None, ramp_ys=None,
                            chunk_elements: int = REFERENCE_CHUNK_ELEMENTS) -> torch.Tensor:
    """Pure-torch :func:`render_shapes`; the shapes are tested in chunks, so the masks held at once
    are (N, chunk, H, W) with ``N * chunk * H * W <= chunk_elements`` (at least one shape a chunk)."""
    p, (n, k, c, height, width) = _prepare(centers, sizes, colors, background, height, width,
                                           kinds, angles, gradients, xs, ys, ramp_xs, ramp_ys)
    device = centers.device
    top = torch.full((n, height, width), -1, dtype=torch.long, device=device)
    step = max(1, int(chunk_elements) // max(1, n * height * width))
    for start in range(0, k, step):
        stop = min(k, start + step)
        inside = _covered(p, start, stop)
        order = torch.arange(start, stop, device=device).view(1, -1, 1, 1)
        chunk_top = torch.where(inside, order, torch.full_like(order, -1)).amax(dim=1)
        top = torch.where(chunk_top >= 0, chunk_top, top)
    return _colour(p, top, n, c, height, width)


def render_shapes(centers: torch.Tensor, sizes: torch.Tensor, colors: torch.Tensor, background: torch.Tensor,
                  height: int, width: int, *, kinds: torch.Tensor | None = None, angles: torch.Tensor | None = None,
                  gradients: torch.Tensor | None = None, xs: torch.Tensor | None = None,
                  ys: torch.Tensor | None = None, ramp_xs: torch.Tensor | None = None,
                  ramp_ys: torch.Tensor | None = None, backend: str = "auto") -> torch.Tensor:
    """Images (N, C, height, width) of K occluding shapes per image, later shapes on top.

    Args:
        centers: (N, K, 2) shape centres (x, y) in the coordinates of ``xs`` / ``ys``.
        sizes: (N, K, 2) half-extents (a, b) along the shape's own axes, or (N, K) radii (a = b).
        colors: (N, K, C) colour of each shape (any C >= 1; the output has the dtype of ``colors``).
        background: (N, C) colour or (N, C, H, W) image where no shape covers a pixel.
        height, width: output size in pixels.
        kinds: (N, K) integer shape codes (:data:`SHAPES`: 0 disc, 1 ellipse, 2 rectangle,
            3 triangle); default all discs.
        angles: (N, K) rotation in radians (ellipse, rectangle, triangle); default 0.
        gradients: (N, K, 2) shading: the colour of shape k at pixel (i, j) is
            ``clamp(colors + gradients[..., 0] * ramp_ys[i] + gradients[..., 1] * ramp_xs[j], 0, 1)``;
            default flat.
        xs, ys: (W,) and (H,) pixel coordinates; default pixel centres ``j + 0.5`` and ``i + 0.5``
            (e.g. ``torch.linspace(0, 1, size)`` for unit coordinates).
        ramp_xs, ramp_ys: (W,) and (H,) coordinates of the shading ramps; default ``xs`` and ``ys``
            (e.g. ``torch.linspace(-0.5, 0.5, size)`` for a ramp centred on the image).
        backend: ``"auto"`` | ``"torch"`` | ``"triton"`` (:mod:`inversion.kernels.backend`).

    The random parameters are drawn by the caller (e.g. with a seeded :class:`torch.Generator`), so
    the same draw gives the same image on every backend. See the module docstring for the exact
    covering tests. The kernel computes geometry in float32 (the reference in the dtype of ``centers``).
    """
    tensors = [t for t in (centers, sizes, colors, background, kinds, angles, gradients, xs, ys, ramp_xs, ramp_ys)
               if t is not None]
    if resolve(backend, *tensors) == "torch":
        return render_shapes_reference(centers, sizes, colors, background, height, width, kinds=kinds,
                                       angles=angles, gradients=gradients, xs=xs, ys=ys, ramp_xs=ramp_xs,
                                       ramp_ys=ramp_ys)
    p, shape = _prepare(centers, sizes, colors, background, height, width, kinds, angles, gradients, xs, ys,
                        ramp_xs, ramp_ys)
    from .triton_kernels import render_shapes_triton
    return render_shapes_triton(p, *shape)


def render_discs(centers: torch.Tensor, radii: torch.Tensor, colors: torch.Tensor, background: torch.Tensor,
                 height: int, width: int, *, gradients: torch.Tensor | None = None,
                 ramp_xs: torch.Tensor | None = None, ramp_ys: torch.Tensor | None = None,
                 backend: str = "auto") -> torch.Tensor:
    """Dead-leaves images (N, C, height, width): K discs per image, later discs on top.

    ``centers`` (N, K, 2) in pixels (x, y), pixel (i, j) centred at (j + 0.5, i + 0.5); a pixel is
    covered when ``(x - cx)**2 + (y - cy)**2 <= radii**2``; ``radii`` (N, K); ``colors`` (N, K, C);
    ``background`` (N, C) or (N, C, H, W); optional shading ``gradients`` (N, K, 2) along
    ``ramp_ys`` / ``ramp_xs``. The same as :func:`render_shapes` with every shape a disc.
    """
    if tuple(radii.shape) != tuple(centers.shape[:2]):
        raise ValueError(f"radii must be (N, K) = {tuple(centers.shape[:2])}, got {tuple(radii.shape)}")
    return render_shapes(centers, radii, colors, background, height, width, gradients=gradients,
                         ramp_xs=ramp_xs, ramp_ys=ramp_ys, backend=backend)


def render_discs_reference(centers, radii, colors, background, height, width, **kwargs) -> torch.Tensor:
    """Pure-torch :func:`render_discs`."""
    if tuple(radii.shape) != tuple(centers.shape[:2]):
        raise ValueError(f"radii must be (N, K) = {tuple(centers.shape[:2])}, got {tuple(radii.shape)}")
    return render_shapes_reference(centers, radii, colors, background, height, width, **kwargs)
