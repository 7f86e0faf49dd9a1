"""The logit-conditioned BigGAN-style generator of feedforward inversion (Teterwak et al. 2021, Sec. 3).

``G(y, z)`` maps a frozen classifier's pre-softmax logits ``y`` (length ``logit_dim``) and Gaussian
noise ``z`` to an image in [0, 1]. As in BigGAN (Brock et al. 2019), ``z`` is split into
``n_blocks + 1`` chunks: the first feeds a linear layer that makes the ``bottom x bottom`` feature
map, every other chunk is concatenated with a *learned linear embedding of the logits* (BigGAN's
shared class embedding, with a one-hot label replaced by the logit vector) and conditions the
BatchNorms of one residual up-block. Spectral norm on every layer.

Unconditional use (``logit_dim=0`` or ``None``): the logit embedding disappears and the BatchNorms
are conditioned on the noise chunks alone (BigGAN's hierarchical latent); call ``G(None, z)``.
This is the generator of the small SNGAN built for the zero-shot inversion notebooks.

Logits of different classifiers live on very different scales (a robust model's logits are
small), so both networks standardize the logits with statistics of the training set
(``set_logit_statistics``; stored as buffers, so a saved generator carries them).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import ResBlockUp, sn_conv, sn_linear


@dataclass(frozen=True)
class GeneratorConfig:
    """Shape of a :class:`LogitConditionedGenerator`."""

    logit_dim: int | None = 10                   # length of the logit vector; 0/None: unconditional
    z_dim: int = 64                              # Gaussian noise, split into n_blocks + 1 chunks
    widths: tuple[int, ...] = (128, 128, 64, 32)  # channels at bottom, then after each up-block
    bottom: int = 4                              # side of the first feature map
    embed_dim: int = 32                          # logit embedding (BigGAN's shared embedding)
    sn: bool = True                              # spectral norm on every conv / linear layer

    @property
    def conditional(self) -> bool:
        return bool(self.logit_dim)

    @property
    def n_blocks(self) -> int:
        return len(self.widths) - 1

    @property
    def image_size(self) -> int:
        return self.bottom * 2 ** self.n_blocks

    def z_chunks(self) -> list[int]:
        n = self.n_blocks + 1
        if self.z_dim < n:
            raise ValueError(f"z_dim={self.z_dim} must be at least n_blocks + 1 = {n}")
        size = self.z_dim // n
        return [self.z_dim - size * (n - 1)] + [size] * (n - 1)


class LogitConditionedGenerator(nn.Module):
    """BigGAN-style generator ``G(logits, z) -> image in [0, 1]`` (see the module docstring)."""

    def __init__(self, config: GeneratorConfig = GeneratorConfig()):
        super().__init__()
        self.config = c = config
        self.chunks = c.z_chunks()
        logit_dim = c.logit_dim or 0
        self.embed = nn.Linear(logit_dim, c.embed_dim, bias=False) if c.conditional else None
        cond_dim = (c.embed_dim if c.conditional else 0) + self.chunks[1]
        self.linear = sn_linear(self.chunks[0], c.widths[0] * c.bottom ** 2, sn=c.sn)
        self.blocks = nn.ModuleList(ResBlockUp(a, b, cond_dim, c.sn) for a, b in zip(c.widths[:-1], c.widths[1:]))
        self.out_bn = nn.BatchNorm2d(c.widths[-1])
        self.out_conv = sn_conv(c.widths[-1], 3, 3, c.sn)
        self.register_buffer("logit_mean", torch.zeros(logit_dim))
        self.register_buffer("logit_std", torch.ones(()))

    def set_logit_statistics(self, logits: torch.Tensor) -> None:
        """Standardize logits with the per-class mean and one overall std of a training set."""
        self.logit_mean.copy_(logits.mean(0))
        self.logit_std.copy_((logits - logits.mean(0)).std().clamp_min(1e-6))

    def sample_noise(self, n: int, generator: torch.Generator | None = None,
                     device: str | torch.device | None = None) -> torch.Tensor:
        """Standard Gaussian noise ``(n, z_dim)`` (the seeded generator decides it, not global state)."""
        device = device or self.logit_std.device
        return torch.randn(n, self.config.z_dim, generator=generator, device=generator.device
                           if generator is not None else device).to(device)

    def forward(self, logits: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
        c = self.config
        if z.dim() != 2 or z.shape[1] != c.z_dim:
            raise ValueError(f"z must have shape (N, {c.z_dim}), got {tuple(z.shape)}")
        zs = torch.split(z, self.chunks, dim=1)
        if c.conditional:
            if logits is None or logits.shape != (len(z), c.logit_dim):
                raise ValueError(f"logits must have shape {(len(z), c.logit_dim)}, "
                                 f"got {None if logits is None else tuple(logits.shape)}")
            e = self.embed((logits - self.logit_mean) / self.logit_std)
        h = self.linear(zs[0]).view(len(z), c.widths[0], c.bottom, c.bottom)
        for block, zc in zip(self.blocks, zs[1:]):
            h = block(h, torch.cat([e, zc], 1) if c.conditional else zc)
        return (torch.tanh(self.out_conv(F.relu(self.out_bn(h)))) + 1) / 2
