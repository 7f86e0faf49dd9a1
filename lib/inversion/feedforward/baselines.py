"""The two baselines of feedforward inversion (Teterwak et al. 2021, Sec. 4).

* :class:`PixelDecoder` -- a Dosovitskiy & Brox (CVPR 2016, "Inverting visual representations
  with convolutional networks") style decoder: fully connected layers on the logit vector, then
  up-convolutions to an image, trained with a pixel (mean squared) loss on the same logits the
  GAN sees. It predicts the conditional *mean* image, hence blurry reconstructions.
* :func:`invert_logits_by_optimization` -- optimization-based inversion of one image's logits
  (Mahendran & Vedaldi 2015 style, no prior): gradient descent on the image so that the frozen
  classifier's logits match the target logits. Costs hundreds of forward/backward passes per
  image, which is what the single forward pass of a trained generator is compared against.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..paths import written_atomically
from .train import assert_frozen, cache_path, training_pairs


@dataclass(frozen=True)
class DecoderConfig:
    """The pixel-loss decoder baseline and its training."""

    logit_dim: int = 10
    hidden: int = 256               # width of the fully connected layers
    widths: tuple[int, ...] = (64, 32, 16)  # channels at 4x4, after each up-convolution but the last
    image_size: int = 32
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    n_train: int | None = 20000
    seed: int = 0


class PixelDecoder(nn.Module):
    """Dosovitskiy & Brox style decoder: FC-FC-FC on the logits, then 4x4 stride-2 up-convolutions."""

    def __init__(self, config: DecoderConfig = DecoderConfig()):
        super().__init__()
        self.config = c = config
        n_up = (c.image_size // 4).bit_length() - 1
        if 4 * 2 ** n_up != c.image_size:
            raise ValueError(f"image_size must be 4 * 2^k, not {c.image_size}")
        widths = list(c.widths) + [c.widths[-1]] * max(0, n_up - len(c.widths))
        self.fc = nn.Sequential(nn.Linear(c.logit_dim, c.hidden), nn.LeakyReLU(0.2),
                                nn.Linear(c.hidden, c.hidden), nn.LeakyReLU(0.2),
                                nn.Linear(c.hidden, widths[0] * 16), nn.LeakyReLU(0.2))
        layers = []
        for i in range(n_up):
            out = 3 if i == n_up - 1 else widths[i + 1]
            layers.append(nn.ConvTranspose2d(widths[i], out, 4, 2, 1))
            if i < n_up - 1:
                layers.append(nn.LeakyReLU(0.2))
        self.up = nn.Sequential(*layers)
        self.register_buffer("logit_mean", torch.zeros(c.logit_dim))
        self.register_buffer("logit_std", torch.ones(()))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        y = (logits - self.logit_mean) / self.logit_std
        h = self.fc(y).view(len(y), self.config.widths[0], 4, 4)
        return torch.sigmoid(self.up(h))

    @torch.no_grad()
    def invert(self, logits: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        self.eval()
        dev = self.logit_std.device
        return torch.cat([self(logits[i:i + batch_size].to(dev)).cpu() for i in range(0, len(logits), batch_size)])


def train_decoder(classifier: nn.Module, images: torch.Tensor, config: DecoderConfig = DecoderConfig(),
                  device: str | torch.device = "cpu", desc: str = "train decoder",
                  logits: torch.Tensor | None = None) -> tuple[PixelDecoder, dict]:
    """Train the pixel-loss decoder on ``(f(x), x)`` pairs of uint8 ``images``; classifier frozen.

    ``logits``: optionally the classifier's logits of exactly ``images`` (saves recomputing them).
    """
    assert_frozen(classifier)
    c, dev = config, torch.device(device)
    images, logits, rng = training_pairs(classifier, images, logits, c.n_train, c.seed, dev)
    dec = PixelDecoder(c).to(dev)
    dec.logit_mean.copy_(logits.mean(0).to(dev))
    dec.logit_std.copy_((logits - logits.mean(0)).std().clamp_min(1e-6))
    opt = torch.optim.Adam(dec.parameters(), lr=c.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, c.steps)
    losses, pending, start = [], [], time.time()
    for step in tqdm(range(c.steps), desc=desc, leave=False):
        idx = torch.randint(0, len(images), (c.batch_size,), generator=rng)
        x, y = images[idx].float().div(255).to(dev), logits[idx].to(dev)
        loss = F.mse_loss(dec(y), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        pending.append(loss.detach())
        if (step + 1) % 50 == 0 or step == c.steps - 1:   # the losses reach the host every 50 steps
            losses.extend(torch.stack(pending).tolist())
            pending = []
    return dec.eval(), {"loss": losses, "seconds": time.time() - start}


def decoder_train_or_load(classifier: nn.Module, classifier_name: str, profile: str, images: torch.Tensor,
                          config: DecoderConfig = DecoderConfig(), device: str | torch.device = "cpu",
                          logits: torch.Tensor | None = None) -> tuple[PixelDecoder, dict]:
    """The cached pixel-loss decoder of a zoo classifier."""
    path = cache_path("pixel-decoder", classifier_name, profile, config)
    if path.is_file():
        state = torch.load(path, map_location=device, weights_only=False)
        dec = PixelDecoder(config).to(device)
        dec.load_state_dict(state["decoder"])
        return dec.eval(), state["log"]
    dec, log = train_decoder(classifier, images, config, device, desc=f"pixel decoder of {classifier_name}",
                             logits=logits)
    with written_atomically(path) as tmp:
        torch.save({"decoder": dec.state_dict(), "log": log, "config": dataclasses.asdict(config)}, tmp)
    return dec, log


def invert_logits_by_optimization(classifier: nn.Module, target_logits: torch.Tensor, steps: int = 300,
                           lr: float = 0.05, seed: int = 0, image_size: int | None = None,
                           device: str | torch.device = "cpu") -> tuple[torch.Tensor, float]:
    """Images whose logits match ``target_logits`` (N, K): Adam on ``x = sigmoid(w)``, loss ||f(x) - y||^2.

    Starts from mid-grey plus small seeded noise. Returns the images (N, 3, S, S) in [0, 1] and
    the wall time in seconds *per image* (the batch is optimized jointly; the time is divided by N).
    """
    assert_frozen(classifier)
    size = image_size or getattr(classifier, "input_size", 32)
    rng = torch.Generator().manual_seed(seed)
    w = (0.1 * torch.randn(len(target_logits), 3, size, size, generator=rng)).to(device).requires_grad_(True)
    y = target_logits.to(device)
    opt = torch.optim.Adam([w], lr=lr)
    start = time.time()
    for _ in range(steps):
        loss = F.mse_loss(classifier(torch.sigmoid(w)), y, reduction="sum") / len(y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    seconds = (time.time() - start) / len(y)
    return torch.sigmoid(w).detach().cpu(), seconds
