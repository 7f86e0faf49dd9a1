"""The losses of feedforward inversion: the hinge GAN losses (from :mod:`inversion.losses`) and
the optional reconstruction terms (off by default, as in the paper)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import hinge_d_loss, hinge_g_loss

__all__ = ["hinge_d_loss", "hinge_g_loss", "logit_reconstruction_loss", "pixel_loss"]


def pixel_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean squared pixel error between a reconstruction and the image its logits came from."""
    return F.mse_loss(fake, real)


def logit_reconstruction_loss(classifier, fake: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Classifier-feature reconstruction: the frozen classifier's logits of G(y, z) should be y.

    (We use the output layer as "the classifier's features" because it exists for every
    architecture of the zoo; gradients flow to the image only, the classifier stays frozen.)
    """
    return F.mse_loss(classifier(fake), logits)
