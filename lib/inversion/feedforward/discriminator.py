"""Projection discriminator conditioned on logits (Miyato & Koyama 2018; Teterwak et al. 2021 Sec. 3).

``D(x, y) = w^T phi(x) + <V y, phi(x)>``: an SNGAN residual feature extractor ``phi`` (ReLU, then
sum pooling over space), an unconditional linear score, and the *projection* term: the inner
product of a learned linear embedding ``V`` of the (standardized) logit vector with the image
features. With one-hot labels ``V y`` is the class embedding of the original paper; here ``y`` is
the frozen classifier's logit vector.

``logit_dim=0`` or ``None`` gives the unconditional SNGAN discriminator (``D(x, None)``), used by
the zero-shot inversion notebooks.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import ResBlockDown, sn_linear


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Shape of a :class:`ProjectionDiscriminator`."""

    logit_dim: int | None = 10                   # 0/None: unconditional (no projection term)
    widths: tuple[int, ...] = (64, 128, 128)     # output channels of each residual block
    downsample: tuple[bool, ...] = (True, True, False)  # which blocks halve the resolution
    sn: bool = True

    def __post_init__(self):
        if len(self.widths) != len(self.downsample):
            raise ValueError("widths and downsample must have the same length")

    @property
    def conditional(self) -> bool:
        return bool(self.logit_dim)


class ProjectionDiscriminator(nn.Module):
    """``D(x, logits) -> score (N,)`` for images in [0, 1] (see the module docstring)."""

    def __init__(self, config: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        self.config = c = config
        blocks, width = [], 3
        for i, (out, down) in enumerate(zip(c.widths, c.downsample)):
            blocks.append(ResBlockDown(width, out, down=down, first=i == 0, sn=c.sn))
            width = out
        self.blocks = nn.Sequential(*blocks)
        self.linear = sn_linear(width, 1, sn=c.sn)
        self.embed = sn_linear(c.logit_dim, width, bias=False, sn=c.sn) if c.conditional else None
        self.register_buffer("logit_mean", torch.zeros(c.logit_dim or 0))
        self.register_buffer("logit_std", torch.ones(()))

    def set_logit_statistics(self, logits: torch.Tensor) -> None:
        self.logit_mean.copy_(logits.mean(0))
        self.logit_std.copy_((logits - logits.mean(0)).std().clamp_min(1e-6))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x): residual blocks, ReLU, sum over space -> (N, C)."""
        return F.relu(self.blocks(x * 2 - 1)).sum(dim=(2, 3))

    def forward(self, x: torch.Tensor, logits: torch.Tensor | None = None) -> torch.Tensor:
        phi = self.features(x)
        score = self.linear(phi).squeeze(1)
        if self.config.conditional:
            if logits is None or logits.shape != (len(x), self.config.logit_dim):
                raise ValueError(f"logits must have shape {(len(x), self.config.logit_dim)}, "
                                 f"got {None if logits is None else tuple(logits.shape)}")
            y = (logits - self.logit_mean) / self.logit_std
            score = score + (self.embed(y) * phi).sum(1)
        return score
