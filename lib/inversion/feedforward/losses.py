"""Hinge GAN losses (Lim & Ye 2017; used by SNGAN, BigGAN and Teterwak et al. 2021) and the
optional reconstruction terms of feedforward inversion (off by default, as in the paper)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def hinge_d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]."""
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def hinge_g_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss: -E[D(G(z))]."""
    return -fake_scores.mean()


def pixel_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean squared pixel error between a reconstruction and the image its logits came from."""
    return F.mse_loss(fake, real)


def logit_reconstruction_loss(classifier, fake: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Classifier-feature reconstruction: the frozen classifier's logits of G(y, z) should be y.

    (We use the output layer as "the classifier's features" because it exists for every
    architecture of the zoo; gradients flow to the image only, the classifier stays frozen.)
    """
    return F.mse_loss(classifier(fake), logits)
