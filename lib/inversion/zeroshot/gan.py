"""A small SNGAN and its zero-shot inversion (Dong et al., arXiv 2107.06304, GAN section).

* :class:`Generator` - z ~ N(0, I) -> 32x32 RGB in [0, 1], built as named blocks
  (``fc``: z -> 4x4, ``up1``..``up3``: nearest x2 + conv + BN + ReLU, ``to_rgb``) so that it
  splits into f_1..f_K exactly like a classifier (:func:`generator_chain`).
* :class:`Discriminator` - spectrally normalized convolutions (Miyato et al. 2018), hinge loss.
* :func:`fit_gan` - train (or load from ``data/checkpoints/<profile>/zeroshot/``) on
  Fashion-Scenes training images; the GAN is the only thing here that sees real data.
* The inverse of the generator is trained with :func:`~.train.train_inverse` on (z, G(z)) pairs
  with z from the prior (:class:`LatentPrior`): h_0 = z, h_K = G(z), and G_K = g_1 o ... o g_K is
  an encoder z_hat = E(x) in one forward pass. :func:`search_latent` is the optimization baseline
  (Adam on z), :func:`repair` re-generates samples through the encoder, :func:`frechet_distance`
  compares feature distributions (FID-style, on an outside judge's features).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file
from torch.nn.utils.parametrizations import spectral_norm
from tqdm.auto import tqdm

from ..losses import hinge_d_loss, hinge_g_loss
from ..paths import checkpoint_dir, written_atomically
from .split import BlockChain
from .synthetic import ImageSource


class Generator(nn.Module):
    """DCGAN/SNGAN-style generator for 32x32 images; ``forward(z)`` returns images in [0, 1]."""

    def __init__(self, latent_dim: int = 64, width: int = 128):
        super().__init__()
        self.latent_dim = latent_dim
        c1, c2, c3 = width, width // 2, width // 4

        def up(c_in, c_out):
            return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                 nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())
        self.blocks = nn.Sequential(OrderedDict([
            ("fc", nn.Sequential(nn.Linear(latent_dim, c1 * 16), nn.Unflatten(1, (c1, 4, 4)),
                                 nn.BatchNorm2d(c1), nn.ReLU())),
            ("up1", up(c1, c2)),     # 8x8
            ("up2", up(c2, c3)),     # 16x16
            ("up3", up(c3, c3)),     # 32x32
            ("to_rgb", nn.Sequential(nn.Conv2d(c3, 3, 3, padding=1), nn.Sigmoid())),
        ]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.blocks(z)


class Discriminator(nn.Module):
    """Spectrally normalized CNN critic (SNGAN's standard CNN, shrunk): image in [0, 1] -> score."""

    def __init__(self, width: int = 64):
        super().__init__()
        c1, c2, c3 = width // 2, width, width * 2
        sn = spectral_norm
        self.net = nn.Sequential(
            sn(nn.Conv2d(3, c1, 3, 1, 1)), nn.LeakyReLU(0.1), sn(nn.Conv2d(c1, c2, 4, 2, 1)), nn.LeakyReLU(0.1),
            sn(nn.Conv2d(c2, c2, 3, 1, 1)), nn.LeakyReLU(0.1), sn(nn.Conv2d(c2, c3, 4, 2, 1)), nn.LeakyReLU(0.1),
            sn(nn.Conv2d(c3, c3, 3, 1, 1)), nn.LeakyReLU(0.1), sn(nn.Conv2d(c3, c3, 4, 2, 1)), nn.LeakyReLU(0.1),
            nn.Flatten(), sn(nn.Linear(c3 * 16, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(2 * x - 1).squeeze(1)


@dataclass(frozen=True)
class GANConfig:
    """SNGAN training on Fashion-Scenes (hinge loss, Adam(0, 0.9) as in Miyato et al. 2018, TTUR lr)."""

    latent_dim: int = 64       # size of z ~ N(0, I)
    g_width: int = 128         # generator channels at 4x4 (halved per upsampling)
    d_width: int = 64          # discriminator channels
    steps: int = 1500          # generator updates (one discriminator update each)
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 4e-4
    n_train: int = 20000       # Fashion-Scenes training images used
    seed: int = 0


def train_gan(images: torch.Tensor, config: GANConfig, device="cpu", progress: bool = True):
    """Train G and D on uint8 or [0, 1] images (N, 3, 32, 32); returns (G, D, log) with G, D in eval mode."""
    if images.dim() != 4 or images.shape[1:] != (3, 32, 32):
        raise ValueError(f"expected (N, 3, 32, 32) images, got {tuple(images.shape)}")
    images = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    torch.manual_seed(config.seed)
    g = torch.Generator().manual_seed(config.seed + 1)
    G = Generator(config.latent_dim, config.g_width).to(device)
    D = Discriminator(config.d_width).to(device)
    opt_g = torch.optim.Adam(G.parameters(), config.lr_g, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), config.lr_d, betas=(0.0, 0.9))
    log = []
    for step in tqdm(range(config.steps), desc="SNGAN", disable=not progress, leave=False):
        real = images[torch.randint(len(images), (config.batch_size,), generator=g)].to(device)
        z = torch.randn(config.batch_size, config.latent_dim, generator=g).to(device)
        with torch.no_grad():
            fake = G(z)
        loss_d = hinge_d_loss(D(real), D(fake))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        z = torch.randn(config.batch_size, config.latent_dim, generator=g).to(device)
        loss_g = hinge_g_loss(D(G(z)))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if step % 50 == 0 or step == config.steps - 1:
            log.append({"step": step, "loss_d": float(loss_d), "loss_g": float(loss_g)})
    G.eval(), D.eval()
    for p in [*G.parameters(), *D.parameters()]:
        p.requires_grad_(False)
    return G, D, log


def fit_gan(config: GANConfig, profile: str, device="cpu", cache: bool = True, progress: bool = True):
    """Train the SNGAN on Fashion-Scenes (or load it from the cache, keyed by the config); returns (G, D, record)."""
    from ..data import fashion_scenes

    key = hashlib.sha256(json.dumps(dataclasses.asdict(config), sort_keys=True).encode()).hexdigest()[:12]
    folder = checkpoint_dir(profile) / "zeroshot"
    files = {n: folder / f"sngan-{key}-{n}.safetensors" for n in ("G", "D")}
    meta = folder / f"sngan-{key}.json"
    G, D = Generator(config.latent_dim, config.g_width), Discriminator(config.d_width)
    if cache and meta.is_file() and all(f.is_file() for f in files.values()):
        G.load_state_dict(load_file(str(files["G"])))
        D.load_state_dict(load_file(str(files["D"])))
        for p in [*G.parameters(), *D.parameters()]:
            p.requires_grad_(False)
        return G.to(device).eval(), D.to(device).eval(), json.loads(meta.read_text())
    start = time.perf_counter()
    images = fashion_scenes.load("train").images[:config.n_train]   # the zoo's cached training split
    G, D, log = train_gan(images, config, device, progress)
    record = {"key": key, "config": dataclasses.asdict(config), "train_seconds": round(time.perf_counter() - start, 2),
              "log": log}
    if cache:
        for name, net in [("G", G), ("D", D)]:
            with written_atomically(files[name]) as tmp:
                save_file({k: v.contiguous().cpu() for k, v in net.state_dict().items()}, str(tmp))
        with written_atomically(meta) as tmp:   # last: its presence says the weights are complete
            tmp.write_text(json.dumps(record))
    return G, D, record


def generator_chain(G: Generator, cuts=("fc", "up1", "up2", "to_rgb")) -> BlockChain:
    """Split G into blocks f_1..f_K ending after each named block (the last must be ``to_rgb``).

    h_0 = z and h_K = G(z); the chain is frozen (BatchNorm in eval mode).
    """
    names = [n for n, _ in G.blocks.named_children()]
    if list(cuts)[-1] != names[-1]:
        raise ValueError(f"the last cut must be {names[-1]!r} so that h_K is the image")
    ends = [names.index(c) + 1 for c in cuts]
    if any(b <= a for a, b in zip(ends, ends[1:])):
        raise ValueError(f"cuts must follow the generator's order {names}")
    blocks, start = [], 0
    for end in ends:
        blocks.append(nn.Sequential(OrderedDict((n, G.blocks[i]) for i, n in enumerate(names) if start <= i < end)))
        start = end
    return BlockChain(blocks, list(cuts), (G.latent_dim,))


class LatentPrior(ImageSource):
    """The synthesized data of GAN inversion: latent codes z ~ N(0, I) (h_0 of the generator chain)."""

    kind = "latent_prior"

    def __init__(self, latent_dim: int, device="cpu"):
        self.latent_dim, self.device = latent_dim, torch.device(device)

    def sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """z ~ N(0, I) on the generator's device (see :func:`~.synthetic.make_generator`), or on
        ``device`` where there is no generator (the ``meta`` device)."""
        device = generator.device if generator is not None else self.device
        return torch.randn(n, self.latent_dim, generator=generator, device=device)


def search_latent(G: nn.Module, images: torch.Tensor, steps: int = 300, lr: float = 0.05, seed: int = 0,
                  z_init: torch.Tensor | None = None, record_at: Sequence[int] = (), device="cpu",
                  progress: bool = True):
    """Optimization baseline: z* = argmin_z ||G(z) - x||^2 (Adam, per image, batched; start z ~ N(0, I)
    or ``z_init``, e.g. the encoder's guess). All images are optimized jointly, so wall time divided by
    their number is the time per image.

    Returns (z*, seconds per image, {step: (z snapshot, seconds per image so far)}).
    """
    g = torch.Generator().manual_seed(seed)
    latent_dim = G.latent_dim
    z = (torch.randn(len(images), latent_dim, generator=g) if z_init is None else z_init.detach().clone()).to(device)
    z.requires_grad_(True)
    target = images.to(device)
    optimizer = torch.optim.Adam([z], lr=lr)
    snapshots, start = {}, time.perf_counter()
    for step in tqdm(range(1, steps + 1), desc="latent search", disable=not progress, leave=False):
        loss = (G(z) - target).pow(2).flatten(1).mean(1).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step in record_at:
            snapshots[step] = (z.detach().cpu().clone(), (time.perf_counter() - start) / len(images))
    return z.detach().cpu(), (time.perf_counter() - start) / len(images), snapshots


@torch.no_grad()
def repair(G: nn.Module, encoder, images: torch.Tensor, project: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Defect repair by inversion: x' = G(E(x)); ``project`` rescales E(x) to the prior's typical norm sqrt(d).

    Returns (x', E(x)).
    """
    z = encoder(images)
    if project:
        z = z * math.sqrt(z.shape[1]) / z.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return G(z), z


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N, D) (the FID formula)."""
    from scipy import linalg

    a, b = a.double().cpu().numpy(), b.double().cpu().numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(linalg.sqrtm(cov_a @ cov_b))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))
