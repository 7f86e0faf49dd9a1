"""The Triton kernels behind :mod:`.dead_leaves` and :mod:`.pii_augment` (imported only when used).

The kernel bodies are plain functions compiled with ``triton.jit`` on first use, once per mode
(compiled for the GPU, or interpreted on the CPU when ``TRITON_INTERPRET=1``), so the mode can
change within one process (the tests switch it on per test). Kernels are launched with
``enable_fp_fusion=False``: no fused multiply-adds, so every float operation rounds like its torch
reference, and the discs' covering test agrees with the reference bit for bit.

Only Triton builtins are used inside the kernels (``tl.full`` rather than ``tl.zeros``,
``tl.reduce`` with our own ``_add`` rather than ``tl.sum``), because the library's ``@jit`` helpers
cannot run in the interpreter unless ``TRITON_INTERPRET=1`` was set before ``import triton``.

No annotation-time ``from __future__ import annotations`` here: Triton reads ``tl.constexpr``
annotations from the function objects.
"""
import functools

import torch
import triton
import triton.language as tl

from .backend import interpreting

BLOCK_PIXELS = 256      # pixels per program (a power of two, as tl.arange needs)
# Grids put the pixel tiles on axis 0 (up to 2**31 - 1 programs) and images, or copies x channels,
# on axis 1 (CUDA allows at most 65535 there).


@triton.jit
def _add(a, b):
    """The combine function of the sums (``tl.sum`` is a library ``@jit`` function, which the
    interpreter cannot call unless ``TRITON_INTERPRET=1`` was set before Triton was imported)."""
    return a + b


# --- dead leaves and random shapes ------------------------------------------------------------

def _render_shapes_kernel(centers_ptr, half_ptr, inverse_ptr, cos_ptr, sin_ptr, kinds_ptr, colors_ptr,
                          gradients_ptr, background_ptr, xs_ptr, ys_ptr, ramp_xs_ptr, ramp_ys_ptr, out_ptr,
                          K, C, H, W,
                          SHADED: tl.constexpr, BACKGROUND_IMAGE: tl.constexpr, BLOCK: tl.constexpr):
    """One program: BLOCK pixels of image n; loops over the K shapes keeping the topmost index,
    then writes that shape's (flat or shaded) colour, or the background."""
    n = tl.program_id(1)
    tile = tl.program_id(0)
    offs = tile * BLOCK + tl.arange(0, BLOCK)
    valid = offs < H * W
    row = offs // W
    col = offs % W
    x = tl.load(xs_ptr + col, mask=valid, other=0.0)
    y = tl.load(ys_ptr + row, mask=valid, other=0.0)
    top = tl.full([BLOCK], -1, tl.int32)
    for k in range(K):
        s = n * K + k
        cx = tl.load(centers_ptr + s * 2)
        cy = tl.load(centers_ptr + s * 2 + 1)
        a = tl.load(half_ptr + s * 2)
        kind = tl.load(kinds_ptr + s)
        dx = x - cx
        dy = y - cy
        inside = dx * dx + dy * dy <= a * a                                  # disc
        if kind != 0:
            cs = tl.load(cos_ptr + s)
            sn = tl.load(sin_ptr + s)
            u = (cs * dx + sn * dy) * tl.load(inverse_ptr + s * 2)
            v = (-sn * dx + cs * dy) * tl.load(inverse_ptr + s * 2 + 1)
            au = tl.where(u < 0, -u, u)
            av = tl.where(v < 0, -v, v)
            if kind == 1:
                inside = u * u + v * v <= 1.0                                 # ellipse
            elif kind == 2:
                inside = (au <= 1.0) & (av <= 1.0)                            # rectangle
            else:
                inside = (v >= -1.0) & (v <= 1.0) & (au <= (1.0 - v) * 0.5)   # triangle
        top = tl.where(inside, k, top)
    covered = top >= 0
    safe = tl.where(covered, top, 0)
    if SHADED:
        ry = tl.load(ramp_ys_ptr + row, mask=valid, other=0.0)
        rx = tl.load(ramp_xs_ptr + col, mask=valid, other=0.0)
        gy = tl.load(gradients_ptr + (n * K + safe) * 2, mask=valid & covered, other=0.0)
        gx = tl.load(gradients_ptr + (n * K + safe) * 2 + 1, mask=valid & covered, other=0.0)
    for c in range(C):
        colour = tl.load(colors_ptr + (n * K + safe) * C + c, mask=valid & covered, other=0.0)
        if SHADED:
            colour = colour + gy * ry.to(colour.dtype) + gx * rx.to(colour.dtype)
            colour = tl.where(colour < 0.0, 0.0, colour)
            colour = tl.where(colour > 1.0, 1.0, colour)
        if BACKGROUND_IMAGE:
            back = tl.load(background_ptr + (n * C + c) * H * W + offs, mask=valid, other=0.0)
        else:
            back = tl.load(background_ptr + n * C + c)
        value = tl.where(covered, colour, back)
        tl.store(out_ptr + (n * C + c) * H * W + offs, value, mask=valid)


# --- PII augmentation ------------------------------------------------------------------------------

def _pii_forward_kernel(x_ptr, shifts_ptr, mu_ptr, sigma_ptr, out_ptr, C, H, W, COPIES,
                        BLOCK: tl.constexpr):
    """One program: BLOCK pixels of copy nb, channel c: out = sigma * x[n, c, shifted] + mu."""
    row = tl.program_id(1)                 # nb * C + c over the N * COPIES copies
    tile = tl.program_id(0)
    nb = row // C
    c = row % C
    n = nb // COPIES
    offs = tile * BLOCK + tl.arange(0, BLOCK)
    valid = offs < H * W
    i = offs // W
    j = offs % W
    dy = tl.load(shifts_ptr + nb * 2)       # in [0, H)
    dx = tl.load(shifts_ptr + nb * 2 + 1)  # in [0, W)
    si = i - dy
    si = tl.where(si < 0, si + H, si)
    sj = j - dx
    sj = tl.where(sj < 0, sj + W, sj)
    v = tl.load(x_ptr + (n * C + c) * H * W + si * W + sj, mask=valid, other=0.0)
    s = tl.load(sigma_ptr + row)
    m = tl.load(mu_ptr + row)
    tl.store(out_ptr + row * H * W + offs, s * v + m, mask=valid)


def _pii_backward_x_kernel(grad_ptr, shifts_ptr, sigma_ptr, out_ptr, C, H, W, COPIES,
                           BLOCK: tl.constexpr, ACC: tl.constexpr):
    """One program: BLOCK pixels of image n, channel c: dx = sum_b sigma[nb, c] * dy[nb, c, unshifted]."""
    row = tl.program_id(1)                 # n * C + c over the N images
    tile = tl.program_id(0)
    n = row // C
    c = row % C
    offs = tile * BLOCK + tl.arange(0, BLOCK)
    valid = offs < H * W
    i = offs // W
    j = offs % W
    acc = tl.full([BLOCK], 0.0, ACC)
    for b in range(COPIES):
        nb = n * COPIES + b
        dy = tl.load(shifts_ptr + nb * 2)
        dx = tl.load(shifts_ptr + nb * 2 + 1)
        oi = i + dy
        oi = tl.where(oi >= H, oi - H, oi)
        oj = j + dx
        oj = tl.where(oj >= W, oj - W, oj)
        g = tl.load(grad_ptr + (nb * C + c) * H * W + oi * W + oj, mask=valid, other=0.0)
        s = tl.load(sigma_ptr + nb * C + c)
        acc += (s * g).to(ACC)
    tl.store(out_ptr + row * H * W + offs, acc, mask=valid)


def _pii_backward_color_kernel(grad_ptr, x_ptr, shifts_ptr, grad_mu_ptr, grad_sigma_ptr, C, H, W, COPIES,
                               BLOCK: tl.constexpr, ACC: tl.constexpr):
    """One program per copy and channel: dmu = sum_ij dy, dsigma = sum_ij dy * x_shifted."""
    row = tl.program_id(0)                 # nb * C + c
    nb = row // C
    c = row % C
    n = nb // COPIES
    dy = tl.load(shifts_ptr + nb * 2)
    dx = tl.load(shifts_ptr + nb * 2 + 1)
    acc_mu = tl.full([BLOCK], 0.0, ACC)
    acc_sigma = tl.full([BLOCK], 0.0, ACC)
    for start in range(0, H * W, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        valid = offs < H * W
        i = offs // W
        j = offs % W
        si = i - dy
        si = tl.where(si < 0, si + H, si)
        sj = j - dx
        sj = tl.where(sj < 0, sj + W, sj)
        g = tl.load(grad_ptr + row * H * W + offs, mask=valid, other=0.0).to(ACC)
        v = tl.load(x_ptr + (n * C + c) * H * W + si * W + sj, mask=valid, other=0.0).to(ACC)
        acc_mu += g
        acc_sigma += g * v
    tl.store(grad_mu_ptr + row, tl.reduce(acc_mu, 0, _add))
    tl.store(grad_sigma_ptr + row, tl.reduce(acc_sigma, 0, _add))


@functools.lru_cache(maxsize=None)
def _compiled(name: str, interpret: bool):
    """``triton.jit`` of the kernel body ``name`` for one mode (the mode is read at decoration)."""
    return triton.jit(globals()[name])


def _kernel(name: str):
    return _compiled(name, interpreting())


_OPTIONS = {"enable_fp_fusion": False}


def _launch_options() -> dict:
    # the interpreter takes no compile options
    return {} if interpreting() else dict(_OPTIONS)


def _acc_dtype(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def render_shapes_triton(p: dict, n: int, k: int, c: int, height: int, width: int) -> torch.Tensor:
    """:func:`.dead_leaves.render_shapes` on the Triton kernel, from the normalized parameters
    ``p`` of ``dead_leaves._prepare`` (geometry in float32)."""
    colors = p["colors"].contiguous()
    out = torch.empty(n, c, height, width, dtype=colors.dtype, device=colors.device)
    if out.numel() == 0:
        return out
    names = ("centers", "half", "inverse", "cos", "sin", "xs", "ys", "ramp_xs", "ramp_ys")
    f32 = {name: p[name].to(torch.float32).contiguous() for name in names}
    shaded = p["gradients"] is not None
    gradients = p["gradients"].contiguous() if shaded else colors     # unused pointer when flat
    background = p["background"].contiguous()
    grid = (triton.cdiv(height * width, BLOCK_PIXELS), n)
    _kernel("_render_shapes_kernel")[grid](
        f32["centers"], f32["half"], f32["inverse"], f32["cos"], f32["sin"], p["kinds"].contiguous(), colors,
        gradients, background, f32["xs"], f32["ys"], f32["ramp_xs"], f32["ramp_ys"], out, k, c, height, width,
        SHADED=shaded, BACKGROUND_IMAGE=background.dim() == 4, BLOCK=BLOCK_PIXELS, **_launch_options())
    return out


def pii_augment_forward_triton(x: torch.Tensor, shifts: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor,
                               copies: int) -> torch.Tensor:
    n, c, h, w = x.shape
    out = torch.empty(n * copies, c, h, w, dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    grid = (triton.cdiv(h * w, BLOCK_PIXELS), n * copies * c)
    _kernel("_pii_forward_kernel")[grid](x, shifts, mu, sigma, out, c, h, w, copies, BLOCK=BLOCK_PIXELS,
                                         **_launch_options())
    return out


def pii_augment_backward_triton(grad: torch.Tensor, x: torch.Tensor, shifts: torch.Tensor, sigma: torch.Tensor,
                                copies: int, need_x: bool, need_mu: bool, need_sigma: bool):
    n, c, h, w = x.shape
    acc = _acc_dtype(x.dtype)
    grad_x = grad_mu = grad_sigma = None
    if need_x:
        grad_x = torch.empty_like(x)
        if grad_x.numel():
            grid = (triton.cdiv(h * w, BLOCK_PIXELS), n * c)
            _kernel("_pii_backward_x_kernel")[grid](grad, shifts, sigma, grad_x, c, h, w, copies,
                                                    BLOCK=BLOCK_PIXELS, ACC=acc, **_launch_options())
    if need_mu or need_sigma:
        sums_mu = torch.empty(n * copies, c, dtype=x.dtype, device=x.device)
        sums_sigma = torch.empty_like(sums_mu)
        if sums_mu.numel():
            _kernel("_pii_backward_color_kernel")[(n * copies * c,)](
                grad, x, shifts, sums_mu, sums_sigma, c, h, w, copies, BLOCK=BLOCK_PIXELS, ACC=acc,
                **_launch_options())
        grad_mu = sums_mu if need_mu else None
        grad_sigma = sums_sigma if need_sigma else None
    return grad_x, grad_mu, grad_sigma
