"""Losses shared by the algorithm packages: the hinge GAN losses (Lim & Ye 2017) and total variation.

SNGAN (Miyato et al. 2018), BigGAN and the logit-conditioned generator of Teterwak et al. 2021
train with them; so do the study's SNGAN of notebook 06 (``zeroshot.gan``) and the logit GAN of
notebooks 02-04 (``feedforward``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def hinge_d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]."""
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def hinge_g_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss: -E[D(G(z))]."""
    return -fake_scores.mean()


def total_variation(x: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """Anisotropic total variation of (..., H, W) images: the mean absolute (``squared``: mean squared)
    difference of vertical neighbours plus that of horizontal neighbours. Squared, it is DeepDream's
    image prior (``class_inversion.TotalVariation``); absolute, the zero-shot optimization baseline's."""
    dy, dx = x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]
    if squared:
        return (dy ** 2).mean() + (dx ** 2).mean()
    return dy.abs().mean() + dx.abs().mean()
