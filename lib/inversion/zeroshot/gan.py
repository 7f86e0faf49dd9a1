"""A small SNGAN and its zero-shot inversion (Dong et al., arXiv 2107.06304, GAN section).

* :class:`Generator` - z ~ N(0, I) -> S x S RGB in [0, 1] (S = 32 by default, 128 for the paper's
  faces), built as named blocks (``fc``: z -> 4x4, ``up1``..``upN``: nearest x2 + conv + BN + ReLU,
  N = log2(S / 4), so ``up1..up3`` at 32 px and ``up1..up5`` at 128 px, ``to_rgb``) so that it
  splits into f_1..f_K exactly like a classifier (:func:`generator_chain`).
* :class:`Discriminator` - spectrally normalized convolutions (Miyato et al. 2018), hinge loss;
  one stride-2 stage per factor 2 from S down to 4x4.
* :func:`fit_gan` - train (or load from ``data/checkpoints/<profile>/zeroshot/``) on
  Fashion-Scenes training images (``GANConfig.dataset="fashion-scenes"``, the default) or on a face
  folder (``"faces"``, :mod:`inversion.data.faces`, e.g. CelebA); the GAN is the only thing here
  that sees real data. The cache key (:func:`cache_key`) leaves the new fields out at their
  defaults, so the 32 px Fashion-Scenes GANs keep the keys they had before those fields existed.
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
from ..precision import autocast, check as check_precision, to_memory_format
from .split import BlockChain
from .synthetic import ImageSource


def up_blocks(image_size: int) -> int:
    """The number of x2 stages from 4x4 to ``image_size`` (3 at 32 px, 5 at 128 px)."""
    if image_size < 8 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
    return image_size.bit_length() - 3


def generator_channels(width: int, image_size: int = 32) -> list[int]:
    """Channels at 4x4 and after each up-block: ``width`` halved per block, the last block keeping
    its input's channels ([w, w/2, w/4, w/4] at 32 px; [w, w/2, ..., w/16, w/16] at 128 px, which for
    w = 1024 is the 1024 -> 64 channel shape of SNGAN's 128 px ResNet generator, Miyato et al. 2018)."""
    n = up_blocks(image_size)
    channels = [width] + [width // 2 ** min(i, n - 1) for i in range(1, n + 1)]
    if min(channels) < 1:
        raise ValueError(f"g_width {width} is too narrow for {n} up-blocks (channels {channels})")
    return channels


def discriminator_channels(width: int, image_size: int = 32) -> list[int]:
    """Channels at full resolution and after each stride-2 stage: w/2, then w doubled per stage up
    to the last, which keeps its input's channels ([w/2, w, 2w, 2w] at 32 px; [w/2, w, ..., 8w, 8w]
    at 128 px: for w = 128 SNGAN's 128 px ResNet discriminator's 64 -> 1024)."""
    n = up_blocks(image_size)
    channels = [width // 2] + [width * 2 ** max(0, min(j - 1, n - 2)) for j in range(1, n + 1)]
    if min(channels) < 1:
        raise ValueError(f"d_width {width} is too narrow (channels {channels})")
    return channels


class Generator(nn.Module):
    """DCGAN/SNGAN-style generator for ``image_size`` x ``image_size`` images (32 by default);
    ``forward(z)`` returns images in [0, 1]. Blocks ``fc``, ``up1``..``upN`` (N = log2(size / 4)),
    ``to_rgb``; at 32 px exactly the original three-up-block network (same modules, same order,
    so the same initialization under a seed and the same checkpoints)."""

    def __init__(self, latent_dim: int = 64, width: int = 128, image_size: int = 32):
        super().__init__()
        self.latent_dim, self.image_size = latent_dim, image_size
        channels = generator_channels(width, image_size)

        def up(c_in, c_out):
            return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                 nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())
        blocks = [("fc", nn.Sequential(nn.Linear(latent_dim, channels[0] * 16), nn.Unflatten(1, (channels[0], 4, 4)),
                                       nn.BatchNorm2d(channels[0]), nn.ReLU()))]
        for i in range(1, len(channels)):                   # up_i: 4 * 2^i pixels
            blocks.append((f"up{i}", up(channels[i - 1], channels[i])))
        blocks.append(("to_rgb", nn.Sequential(nn.Conv2d(channels[-1], 3, 3, padding=1), nn.Sigmoid())))
        self.blocks = nn.Sequential(OrderedDict(blocks))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.blocks(z)


class Discriminator(nn.Module):
    """Spectrally normalized CNN critic (SNGAN's standard CNN, shrunk): image in [0, 1] -> score.

    A 3x3 conv, then per factor 2 down to 4x4 a stride-2 4x4 conv (followed by a 3x3 conv except
    after the last), a linear score. At 32 px exactly the original network (same layers, same order).
    """

    def __init__(self, width: int = 64, image_size: int = 32):
        super().__init__()
        self.image_size = image_size
        channels = discriminator_channels(width, image_size)
        sn = spectral_norm
        layers = [sn(nn.Conv2d(3, channels[0], 3, 1, 1)), nn.LeakyReLU(0.1)]
        for j in range(1, len(channels)):
            layers += [sn(nn.Conv2d(channels[j - 1], channels[j], 4, 2, 1)), nn.LeakyReLU(0.1)]
            if j < len(channels) - 1:
                layers += [sn(nn.Conv2d(channels[j], channels[j], 3, 1, 1)), nn.LeakyReLU(0.1)]
        self.net = nn.Sequential(*layers, nn.Flatten(), sn(nn.Linear(channels[-1] * 16, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(2 * x - 1).squeeze(1)


DATASETS = ("fashion-scenes", "faces")
# Fields added after GAN checkpoints were cached, with the defaults that reproduce the older GANs:
# at these values they stay out of the cache key (the pattern of inversion.precision.cache_fields).
KEY_DEFAULTS = {"image_size": 32, "dataset": "fashion-scenes", "precision": "fp32", "channels_last": False}


@dataclass(frozen=True)
class GANConfig:
    """SNGAN training on Fashion-Scenes or faces (hinge loss, Adam(0, 0.9) as in Miyato et al. 2018, TTUR lr)."""

    latent_dim: int = 64       # size of z ~ N(0, I)
    g_width: int = 128         # generator channels at 4x4 (halved per upsampling)
    d_width: int = 64          # discriminator channels
    steps: int = 1500          # generator updates (one discriminator update each)
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 4e-4
    n_train: int = 20000       # training images used (a seeded subset of a face folder; all if it has fewer)
    seed: int = 0
    image_size: int = 32       # S: the generator has log2(S / 4) up-blocks (3 at 32 px, 5 at 128 px)
    dataset: str = "fashion-scenes"   # "fashion-scenes" (32 px only) or "faces" (data.faces: FACES_DIR)
    precision: str = "fp32"    # "bf16": G and D forward passes under bf16 autocast (inversion.precision)
    channels_last: bool = False

    def __post_init__(self):
        check_precision(self.precision)
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, not {self.dataset!r}")
        up_blocks(self.image_size)
        if self.dataset == "fashion-scenes" and self.image_size != 32:
            raise ValueError(f"Fashion-Scenes is rendered at 32 px; image_size={self.image_size} needs dataset='faces'")


def cache_fields(config: GANConfig) -> dict:
    """The config's fields as they enter the cache key: ``image_size``, ``dataset``, ``precision`` and
    ``channels_last`` are left out at their defaults (32, ``fashion-scenes``, fp32, off), so GANs
    cached before they existed keep their keys."""
    fields = dataclasses.asdict(config)
    for name, default in KEY_DEFAULTS.items():
        if fields.get(name) == default:
            del fields[name]
    return fields


def cache_key(config: GANConfig) -> str:
    """The 12 hex digits naming a GAN's checkpoint files: a hash of :func:`cache_fields`."""
    return hashlib.sha256(json.dumps(cache_fields(config), sort_keys=True).encode()).hexdigest()[:12]


def train_step(G: nn.Module, D: nn.Module, opt_g, opt_d, real: torch.Tensor, config: GANConfig,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One SNGAN update: a discriminator step on ``real`` and fresh samples, then a generator step
    (hinge losses, in float32; the forward passes in ``config.precision``). Returns (loss_d, loss_g)."""
    device = real.device
    z = torch.randn(len(real), config.latent_dim, generator=generator).to(device)
    with torch.no_grad(), autocast(config.precision, device):
        fake = G(z)
    with autocast(config.precision, device):
        scores_real, scores_fake = D(to_memory_format(real, config.channels_last)), D(fake)
    loss_d = hinge_d_loss(scores_real.float(), scores_fake.float())
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    z = torch.randn(len(real), config.latent_dim, generator=generator).to(device)
    with autocast(config.precision, device):
        scores = D(G(z))
    loss_g = hinge_g_loss(scores.float())
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return loss_d.detach(), loss_g.detach()


def train_gan(images: torch.Tensor, config: GANConfig, device="cpu", progress: bool = True):
    """Train G and D on uint8 or [0, 1] images (N, 3, S, S), S = ``config.image_size``; returns (G, D, log)
    with G, D in eval mode. uint8 images are converted batch by batch (200k faces at 128 px stay 9.8 GB)."""
    size = config.image_size
    if images.dim() != 4 or images.shape[1:] != (3, size, size):
        raise ValueError(f"expected (N, 3, {size}, {size}) images, got {tuple(images.shape)}")
    as_uint8 = images.dtype == torch.uint8
    if not as_uint8:
        images = images.float()
    torch.manual_seed(config.seed)
    g = torch.Generator().manual_seed(config.seed + 1)
    layout = config.channels_last
    G = to_memory_format(Generator(config.latent_dim, config.g_width, size).to(device), layout)
    D = to_memory_format(Discriminator(config.d_width, size).to(device), layout)
    opt_g = torch.optim.Adam(G.parameters(), config.lr_g, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), config.lr_d, betas=(0.0, 0.9))
    log = []
    for step in tqdm(range(config.steps), desc="SNGAN", disable=not progress, leave=False):
        real = images[torch.randint(len(images), (config.batch_size,), generator=g)]
        real = (real.float() / 255 if as_uint8 else real).to(device)   # the same values as converting all at once
        loss_d, loss_g = train_step(G, D, opt_g, opt_d, real, config, g)
        if step % 50 == 0 or step == config.steps - 1:
            log.append({"step": step, "loss_d": float(loss_d), "loss_g": float(loss_g)})
    G, D = (net.to(memory_format=torch.contiguous_format) for net in (G, D))
    G.eval(), D.eval()
    for p in [*G.parameters(), *D.parameters()]:
        p.requires_grad_(False)
    return G, D, log


def training_images(config: GANConfig, progress: bool = True) -> tuple[torch.Tensor, dict]:
    """The GAN's uint8 training images (N, 3, S, S) and, for faces, where they came from.

    ``fashion-scenes``: the first ``n_train`` of the zoo's cached training split (32 px).
    ``faces``: a seeded subset of ``n_train`` images of the face folder (:func:`inversion.data.faces.load`,
    ``FACES_DIR``), centre-cropped and resized to ``image_size``.
    """
    if config.dataset == "faces":
        from ..data import faces

        folder = faces.find()
        images = faces.load(n=config.n_train, size=config.image_size, seed=config.seed, uint8=True,
                            progress=progress)
        return images, {"folder": str(folder), "images": len(images)}
    from ..data import fashion_scenes

    return fashion_scenes.load("train").images[:config.n_train], {}   # the zoo's cached training split


def fit_gan(config: GANConfig, profile: str, device="cpu", cache: bool = True, progress: bool = True):
    """Train the SNGAN on ``config.dataset`` (or load it from the cache, keyed by :func:`cache_key`);
    returns (G, D, record)."""
    key = cache_key(config)
    folder = checkpoint_dir(profile) / "zeroshot"
    files = {n: folder / f"sngan-{key}-{n}.safetensors" for n in ("G", "D")}
    meta = folder / f"sngan-{key}.json"
    G = Generator(config.latent_dim, config.g_width, config.image_size)
    D = Discriminator(config.d_width, config.image_size)
    if cache and meta.is_file() and all(f.is_file() for f in files.values()):
        G.load_state_dict(load_file(str(files["G"])))
        D.load_state_dict(load_file(str(files["D"])))
        for p in [*G.parameters(), *D.parameters()]:
            p.requires_grad_(False)
        return G.to(device).eval(), D.to(device).eval(), json.loads(meta.read_text())
    start = time.perf_counter()
    images, source = training_images(config, progress)
    G, D, log = train_gan(images, config, device, progress)
    # "config": the key's fields, so a 32 px Fashion-Scenes record reads as it did before the new fields
    record = {"key": key, "config": cache_fields(config), "train_seconds": round(time.perf_counter() - start, 2),
              "log": log}
    if source:
        record["data"] = source
    if cache:
        for name, net in [("G", G), ("D", D)]:
            with written_atomically(files[name]) as tmp:
                save_file({k: v.contiguous().cpu() for k, v in net.state_dict().items()}, str(tmp))
        with written_atomically(meta) as tmp:   # last: its presence says the weights are complete
            tmp.write_text(json.dumps(record))
    return G, D, record


def generator_chain(G: Generator, cuts=("fc", "up1", "up2", "to_rgb")) -> BlockChain:
    """Split G into blocks f_1..f_K ending after each named block (the last must be ``to_rgb``).

    h_0 = z and h_K = G(z); the chain is frozen (BatchNorm in eval mode). The default cuts exist at
    every image size; at 128 px (``up1..up5``) the last block then holds ``up3..up5`` and ``to_rgb``.
    """
    names = [n for n, _ in G.blocks.named_children()]
    unknown = [c for c in cuts if c not in names]
    if unknown:
        raise KeyError(f"no block {unknown} in the generator; its blocks are {names}")
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
