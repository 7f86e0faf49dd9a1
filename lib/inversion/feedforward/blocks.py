"""Spectrally normalized residual blocks of BigGAN / SNGAN, reusable by every GAN of the study.

* :class:`ConditionalBatchNorm2d` -- BigGAN's class-conditional BatchNorm (Brock et al. 2019,
  Sec. 3 / App. B): ``y = BN(x) * (1 + W_gamma c) + W_beta c`` where ``c`` is a conditioning
  vector (here: a learned linear embedding of the classifier's logits concatenated with a chunk
  of the noise, Teterwak et al. 2021 Sec. 3). With ``cond_dim=0`` it is a plain BatchNorm.
* :class:`ResBlockUp` -- generator block: CBN-ReLU-upsample-conv3x3-CBN-ReLU-conv3x3, plus a
  1x1-conv shortcut of the upsampled input.
* :class:`ResBlockDown` -- discriminator block (Miyato et al. 2018, SNGAN): ReLU-conv-ReLU-conv-
  avgpool plus a 1x1-conv shortcut; ``first=True`` is SNGAN's "optimized" first block (no
  pre-activation on the image).

Every conv / linear layer is wrapped in spectral normalization (``torch.nn.utils.parametrizations``)
when ``sn=True``. The blocks know nothing about logits: conditioning enters only through the
``cond`` vector handed to :class:`ConditionalBatchNorm2d`, so the same blocks build conditional
and unconditional GANs (see :mod:`inversion.feedforward.generator`).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm


def sn_conv(c_in: int, c_out: int, kernel: int = 3, sn: bool = True) -> nn.Module:
    """A same-padding conv, spectrally normalized when ``sn``."""
    conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
    return spectral_norm(conv) if sn else conv


def sn_linear(d_in: int, d_out: int, bias: bool = True, sn: bool = True) -> nn.Module:
    """A linear layer, spectrally normalized when ``sn``."""
    layer = nn.Linear(d_in, d_out, bias=bias)
    return spectral_norm(layer) if sn else layer


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose per-channel gain and bias are linear functions of a conditioning vector.

    ``gain = 1 + W_gamma c``, ``bias = W_beta c`` (BigGAN App. B). ``cond_dim=0``: plain BatchNorm
    (``cond`` is then ignored and may be None).
    """

    def __init__(self, channels: int, cond_dim: int, sn: bool = True):
        super().__init__()
        self.cond_dim = cond_dim
        self.bn = nn.BatchNorm2d(channels, affine=cond_dim == 0)
        if cond_dim > 0:
            self.gain = sn_linear(cond_dim, channels, bias=False, sn=sn)
            self.bias = sn_linear(cond_dim, channels, bias=False, sn=sn)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        out = self.bn(x)
        if self.cond_dim == 0:
            return out
        if cond is None or cond.shape != (len(x), self.cond_dim):
            raise ValueError(f"expected a conditioning batch of shape {(len(x), self.cond_dim)}, "
                             f"got {None if cond is None else tuple(cond.shape)}")
        return out * (1 + self.gain(cond))[:, :, None, None] + self.bias(cond)[:, :, None, None]


class ResBlockUp(nn.Module):
    """BigGAN generator residual block, doubling the resolution (nearest-neighbour upsampling)."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, sn: bool = True):
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(c_in, cond_dim, sn)
        self.conv1 = sn_conv(c_in, c_out, 3, sn)
        self.bn2 = ConditionalBatchNorm2d(c_out, cond_dim, sn)
        self.conv2 = sn_conv(c_out, c_out, 3, sn)
        self.shortcut = sn_conv(c_in, c_out, 1, sn)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, cond)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), cond)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResBlockDown(nn.Module):
    """SNGAN discriminator residual block; halves the resolution when ``down`` (average pooling).

    ``first=True``: the "optimized" first block of SNGAN (conv-ReLU-conv-pool, shortcut pool-conv),
    which must not apply ReLU to the input image.
    """

    def __init__(self, c_in: int, c_out: int, down: bool = True, first: bool = False, sn: bool = True):
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = sn_conv(c_in, c_out, 3, sn)
        self.conv2 = sn_conv(c_out, c_out, 3, sn)
        self.shortcut = sn_conv(c_in, c_out, 1, sn) if (c_in != c_out or down) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        if self.first:  # pool first, then project (SNGAN's optimized block)
            s = self.shortcut(F.avg_pool2d(x, 2) if self.down else x)
        else:
            s = self.shortcut(x)
            s = F.avg_pool2d(s, 2) if self.down else s
        return h + s
