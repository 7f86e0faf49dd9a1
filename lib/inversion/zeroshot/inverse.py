"""Inverse blocks g_k whose architecture follows the forward block's input and output shapes.

g_k maps h_k back to h_{k-1}. For convolutional activations (C, H, W) it is a small residual
conv net that upsamples (nearest + conv) by the factor the forward block downsampled (or
downsamples, stride-2 convs, where a generator block upsampled); for a vector input (a GAN's
latent z) it is an MLP on the flattened feature map; for
token activations (L, D) of a ViT it is a residual MLP over tokens, and the patch embedding is
inverted by a linear map from each token to its patch's pixels. Normalization is a choice
(``norm``): ``"none"`` keeps batch statistics of the synthesized training data out of the inverse;
``"batch"`` puts BatchNorm in the residual blocks, as the plain decoder has it (notebook 05's
divide-and-conquer chains use it); ``"group"`` puts GroupNorm there, which keeps no running
statistics (notebook 05's end-to-end chains, whose blocks see activations from every depth).
``InverseChain`` composes G_k = g_1 o ... o g_k.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

Shape = tuple[int, ...]


NORMS = ("none", "batch", "group")


def _norm(norm: str, width: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(width)
    if norm == "group":
        return nn.GroupNorm(8 if width % 8 == 0 else 1, width)
    return nn.Identity()


class ResidualConv(nn.Module):
    """x + conv(act(conv(act(x)))): leaky ReLUs without normalization (``norm="none"``), or ReLUs
    with BatchNorm (``"batch"``) or GroupNorm of 8 groups (``"group"``) after each conv."""

    def __init__(self, width: int, norm: str = "none"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, not {norm!r}")
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.norm1, self.norm2 = _norm(norm, width), _norm(norm, width)
        self.act = nn.LeakyReLU(0.2) if norm == "none" else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.norm2(self.conv2(self.act(self.norm1(self.conv1(self.act(x))))))


class ConvInverse(nn.Module):
    """(C_out, H_out, W_out) -> (C_in, H_in, W_in), resolution changed by a power of two.

    Where the forward block downsampled (a classifier stage): conv in -> residual blocks at the low
    resolution (where they are cheap) -> per factor 2: nearest x2 + conv -> conv out. Where it
    upsampled (a generator block): conv in -> per factor 2: stride-2 conv -> residual blocks -> conv
    out. Linear output (no squashing). Where input and output shapes match, an identity skip
    (``h + r(h)``, r initialized to zero).
    """

    def __init__(self, in_shape: Shape, out_shape: Shape, width: int | None = None, depth: int = 1,
                 norm: str = "none"):
        super().__init__()
        c_in, h_in, w_in = in_shape
        c_out, h_out, w_out = out_shape
        up = h_in >= h_out
        big, small = (h_in, h_out) if up else (h_out, h_in)
        big_w, small_w = (w_in, w_out) if up else (w_out, w_in)
        if big % small or big_w % small_w or big // small != big_w // small_w:
            raise ValueError(f"cannot invert {out_shape} -> {in_shape}: not an integer resampling")
        factor = big // small
        if factor & (factor - 1):
            raise ValueError(f"resampling factor {factor} is not a power of two")
        self.scale = factor if up else 1 / factor
        width = width or max(c_in, c_out, 16)
        self.head = nn.Conv2d(c_out, width, 3, padding=1)
        self.body = nn.Sequential(*[ResidualConv(width, norm) for _ in range(depth)])
        steps, channels = [], width
        for _ in range(factor.bit_length() - 1):
            if up:
                narrower = max(c_in, 16, channels // 2)
                steps += [nn.LeakyReLU(0.2), nn.Upsample(scale_factor=2, mode="nearest"),
                          nn.Conv2d(channels, narrower, 3, padding=1)]
                channels = narrower
            else:
                steps += [nn.LeakyReLU(0.2), nn.Conv2d(channels, channels, 4, stride=2, padding=1)]
        self.resample = nn.Sequential(*steps)
        self.up = up
        self.tail = nn.Conv2d(channels, c_in, 3, padding=1)
        # identity skip where the forward block kept the shape (a residual stage without stride):
        # g(h) = h + r(h), and r starts at zero, so an untrained g is the identity, not noise
        self.identity_skip = tuple(in_shape) == tuple(out_shape)
        if self.identity_skip:
            nn.init.zeros_(self.tail.weight), nn.init.zeros_(self.tail.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.head(h)
        x = self.resample(self.body(x)) if self.up else self.body(self.resample(x))
        x = self.tail(F.leaky_relu(x, 0.2))
        return h + x if self.identity_skip else x


class VectorInverse(nn.Module):
    """(C, H, W) -> (D,): the inverse of a fully connected block that produced a feature map
    (e.g. a generator's z -> 4x4 projection): flatten, two-layer MLP."""

    def __init__(self, in_shape: Shape, out_shape: Shape, width: int | None = None):
        super().__init__()
        (d,), numel = in_shape, int(torch.tensor(out_shape).prod())
        width = width or max(4 * d, 256)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(numel, width), nn.LeakyReLU(0.2), nn.Linear(width, d))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class TokenInverse(nn.Module):
    """(L_out, D_out) -> (L_in, D_in) for ViT blocks: residual token MLPs plus a token-mixing MLP.

    Where the forward step prepended tokens (a class token added with the position embedding),
    the inverse drops them (L_out - L_in leading tokens).
    """

    def __init__(self, in_shape: Shape, out_shape: Shape, depth: int = 2):
        super().__init__()
        (l_in, d_in), (l_out, d_out) = in_shape, out_shape
        if l_out < l_in:
            raise ValueError(f"cannot invert {l_out} tokens back to {l_in}")
        self.prefix = l_out - l_in
        self.proj_in = nn.Linear(d_out, d_in)
        self.layers = nn.ModuleList()
        for _ in range(depth):
            self.layers.append(nn.ModuleDict({
                "norm1": nn.LayerNorm(d_in), "tokens": nn.Linear(l_in, l_in),
                "norm2": nn.LayerNorm(d_in), "channels": nn.Sequential(
                    nn.Linear(d_in, 2 * d_in), nn.GELU(), nn.Linear(2 * d_in, d_in))}))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h[:, self.prefix:]
        x = self.proj_in(h)
        if x.shape == h.shape:          # identity skip where the token shape is kept
            x = x + h
        for layer in self.layers:
            x = x + layer["tokens"](layer["norm1"](x).transpose(1, 2)).transpose(1, 2)
            x = x + layer["channels"](layer["norm2"](x))
        return x


class PatchInverse(nn.Module):
    """(L, D) tokens -> (C, H, W) image: drop prefix tokens, residual token MLP, linear to patch pixels, fold."""

    def __init__(self, in_shape: Shape, out_shape: Shape):
        super().__init__()
        c, hgt, wid = in_shape
        length, dim = out_shape
        patches = None
        for p in range(1, hgt + 1):
            if hgt % p == 0 and wid % p == 0 and (hgt // p) * (wid // p) in (length, length - 1):
                patches = p
        if patches is None:
            raise ValueError(f"cannot match {length} tokens to a patch grid of a {in_shape} image")
        self.patch, self.grid = patches, (hgt // patches, wid // patches)
        self.prefix = length - self.grid[0] * self.grid[1]
        self.mix = TokenInverse((length - self.prefix, dim), (length - self.prefix, dim), depth=1)
        self.to_pixels = nn.Linear(dim, c * patches * patches)
        self.channels = c

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.to_pixels(self.mix(h[:, self.prefix:]))            # (B, L, C p p)
        x = x.transpose(1, 2)                                        # (B, C p p, L)
        size = (self.grid[0] * self.patch, self.grid[1] * self.patch)
        return F.fold(x, size, kernel_size=self.patch, stride=self.patch)


def inverse_block(in_shape: Shape, out_shape: Shape, width: int | None = None, depth: int = 1,
                  norm: str = "none") -> nn.Module:
    """An inverse g for a forward block mapping ``in_shape`` -> ``out_shape`` (no batch dimension);
    ``norm`` applies to convolutional inverses."""
    if len(in_shape) == 3 and len(out_shape) == 3:
        return ConvInverse(in_shape, out_shape, width, depth, norm)
    if len(in_shape) == 2 and len(out_shape) == 2:
        return TokenInverse(in_shape, out_shape, depth=max(depth, 1))
    if len(in_shape) == 3 and len(out_shape) == 2:
        return PatchInverse(in_shape, out_shape)
    if len(in_shape) == 1 and len(out_shape) in (1, 3):
        return VectorInverse(in_shape, out_shape)
    raise ValueError(f"no inverse block for {out_shape} -> {in_shape}")


class PlainDecoder(nn.Module):
    """The plain decoder baseline: one conv net from h_k straight to the image (Dosovitskiy & Brox
    2016 style; He, Zhang & Lee 2019 train it on noise for data-free attacks on split networks).

    conv-BN-ReLU blocks at the feature resolution, one nearest x2 upsampling + conv-BN-ReLU per
    factor 2, a linear conv to the image. No blocks, no cycle: trained with a pixel loss only.
    """

    def __init__(self, feature_shape: Shape, image_shape: Shape, width: int = 64, layers: int = 2):
        super().__init__()
        if len(feature_shape) != 3 or len(image_shape) != 3:
            raise ValueError(f"the plain decoder maps (C, H, W) features to an image, not {feature_shape} -> {image_shape}")
        (c, h, _), (c_img, h_img, _) = feature_shape, image_shape
        if h_img % h or (h_img // h) & (h_img // h - 1):
            raise ValueError(f"image size {h_img} is not a power-of-two multiple of the feature size {h}")

        def cbr(a, b):
            return [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU()]
        steps = cbr(c, width)
        for _ in range(layers - 1):
            steps += cbr(width, width)
        for _ in range((h_img // h).bit_length() - 1):
            steps += [nn.Upsample(scale_factor=2, mode="nearest"), *cbr(width, width)]
        steps += [nn.Conv2d(width, c_img, 3, padding=1)]
        self.net = nn.Sequential(*steps)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class DecoderBank(nn.Module):
    """One :class:`PlainDecoder` per depth; ``forward(h, depth=k)`` decodes h_k (the interface of
    :class:`InverseChain`, so the same evaluation code reads both)."""

    def __init__(self, shapes: Sequence[Shape], width: int = 64, layers: int = 2):
        super().__init__()
        self.shapes = [tuple(s) for s in shapes]
        self.decoders = nn.ModuleList(PlainDecoder(self.shapes[k], self.shapes[0], width, layers)
                                      for k in range(1, len(shapes)))

    def __len__(self) -> int:
        return len(self.decoders)

    def forward(self, h: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        depth = len(self.decoders) if depth is None else depth
        if tuple(h.shape[1:]) != self.shapes[depth]:
            raise ValueError(f"h_{depth} should have shape {self.shapes[depth]}, got {tuple(h.shape[1:])}")
        return self.decoders[depth - 1](h)


class InverseChain(nn.Module):
    """g_1..g_K; ``forward(h, depth=k)`` is G_k(h_k) = g_1(g_2(...g_k(h_k)))."""

    def __init__(self, shapes: Sequence[Shape], width_mult: float = 1.0, depth: int = 1, norm: str = "none"):
        super().__init__()
        self.shapes = [tuple(s) for s in shapes]
        self.inverses = nn.ModuleList()
        for k in range(1, len(shapes)):
            width = None
            if len(shapes[k]) == 3:
                width = max(16, int(round(width_mult * max(shapes[k - 1][0], shapes[k][0]))))
            self.inverses.append(inverse_block(self.shapes[k - 1], self.shapes[k], width, depth, norm))

    def __len__(self) -> int:
        return len(self.inverses)

    def forward(self, h: torch.Tensor, depth: int | None = None, stop: int = 0) -> torch.Tensor:
        """Invert from h_depth down to h_stop (default: the image h_0)."""
        depth = len(self.inverses) if depth is None else depth
        if tuple(h.shape[1:]) != self.shapes[depth]:
            raise ValueError(f"h_{depth} should have shape {self.shapes[depth]}, got {tuple(h.shape[1:])}")
        for k in range(depth, stop, -1):
            h = self.inverses[k - 1](h)
        return h
