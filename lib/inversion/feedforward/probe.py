"""Factor probe: how much of each nuisance factor a reconstruction carries (this study's measure).

A small convolutional regressor trained on *real* Fashion-Scenes images to read off the
foreground (garment) colour, the background colour, the garment-box centre and its scale.
Applied to a reconstruction, its reading is compared with the ground truth of the image the
logits came from. Its error on held-out real images is the ceiling of this measurement (a
perfect reconstruction scores no better). The "chance" reference is the error of a random
*other* image of the same class: what a reconstruction scores if it gets the class right and
every nuisance factor wrong in the typical way.

Architecture (a regressor with a geometric read-out, so that it learns in a few hundred steps
and reads position to a fraction of a pixel): a CoordConv trunk (Liu et al. 2018: the pixel
coordinates are two extra input channels) at full resolution produces three maps --

* a *background attention* (softmax over pixels); the background colour is the attention-
  weighted mean of the pixels;
* from the features and each pixel's RGB distance to that colour, a *foreground attention*
  (the foreground colour, pooled the same way) and a *garment mask* (sigmoid);
* the mask's column and row profiles (max over rows / columns) give a soft bounding box:
  centre = profile-weighted mean position, side = profile sum, scale = longest side / image
  side (a Fashion-MNIST garment spans its box along its longest edge).

A linear layer on pooled features adds a learned correction to all nine outputs (zero at
initialization). The distance-driven maps start as a colour-distance threshold (0.1) so that
the read-out is meaningful from the first step; everything is then trained end to end on the
standardized factors.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..data.fashion_scenes import Scenes

PROBE_CODE_VERSION = 2  # part of the cache key: bump when the probe's code changes its results


@dataclass(frozen=True)
class ProbeConfig:
    """The factor probe and its training (the hash of this record names its cache file)."""

    width: int = 16                 # channels of the full-resolution CoordConv trunk
    depth: int = 2                  # 3x3 conv-BN-ReLU layers of the trunk
    steps: int = 400                # AdamW steps (one-cycle schedule)
    batch_size: int = 64
    lr: float = 3e-3
    n_train: int | None = 20000     # real training images (a seeded subset; None: all)
    seed: int = 0


def _coordinates(n: int, size: int, device) -> torch.Tensor:
    g = torch.linspace(-1, 1, size, device=device)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    return torch.stack([xx, yy]).expand(n, 2, size, size)


class FactorProbe(nn.Module):
    """Image in [0, 1] -> foreground RGB, background RGB, centre (px), scale (see the module docstring)."""

    def __init__(self, config: ProbeConfig = ProbeConfig(), image_size: int = 32):
        super().__init__()
        self.config, self.image_size = config, image_size
        layers, width = [], 5
        for _ in range(config.depth):
            layers += [nn.Conv2d(width, config.width, 3, padding=1), nn.BatchNorm2d(config.width), nn.ReLU()]
            width = config.width
        self.trunk = nn.Sequential(*layers)
        self.background_attention = nn.Conv2d(width, 1, 1)
        self.foreground_attention = nn.Conv2d(width + 1, 1, 1)
        self.mask = nn.Conv2d(width + 1, 1, 1)
        with torch.no_grad():  # start as "pixels farther than 0.1 from the background colour"
            for conv, bias in [(self.foreground_attention, 0.0), (self.mask, -2.0)]:
                conv.weight.zero_()
                conv.weight[0, -1] = 20.0
                conv.bias.fill_(bias)
        self.correction = nn.Linear(2 * width + 4, 9)
        nn.init.zeros_(self.correction.weight), nn.init.zeros_(self.correction.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw 9-vector: fg (3), bg (3), centre / size (2), scale -- all roughly in [0, 1]."""
        n, _, s, s2 = x.shape
        if (s, s2) != (self.image_size, self.image_size):
            raise ValueError(f"the probe reads {self.image_size}x{self.image_size} images, got {s}x{s2}")
        h = self.trunk(torch.cat([x * 2 - 1, _coordinates(n, s, x.device)], 1))
        rgb = x.flatten(2)
        bg = torch.einsum("nk,nck->nc", self.background_attention(h).flatten(1).softmax(-1), rgb)
        hd = torch.cat([h, (x - bg[:, :, None, None]).norm(dim=1, keepdim=True)], 1)
        fg = torch.einsum("nk,nck->nc", self.foreground_attention(hd).flatten(1).softmax(-1), rgb)
        mask = torch.sigmoid(self.mask(hd)[:, 0])
        px, py = mask.amax(1), mask.amax(2)  # column and row profiles of the garment mask
        pos = torch.arange(s, device=x.device) + 0.5
        wx, wy = px.sum(1), py.sum(1)
        cx, cy = (px * pos).sum(1) / wx.clamp_min(1e-3), (py * pos).sum(1) / wy.clamp_min(1e-3)
        geometry = torch.stack([cx / s, cy / s, wx / s, wy / s], 1)
        base = torch.cat([fg, bg, geometry[:, :2], torch.maximum(wx, wy)[:, None] / s], 1)
        return base + self.correction(torch.cat([h.mean((2, 3)), h.amax((2, 3)), geometry], 1))

    @staticmethod
    def targets(scenes: Scenes, index=slice(None)) -> torch.Tensor:
        s = scenes.images.shape[-1]
        return torch.cat([scenes.foreground[index], scenes.background[index], scenes.center[index] / s,
                          scenes.scale[index, None]], 1)

    @torch.no_grad()
    def read(self, images: torch.Tensor, batch_size: int = 500) -> dict[str, torch.Tensor]:
        """The factors read from images (float in [0, 1] or uint8), in ground-truth units."""
        self.eval()
        device = self.mask.weight.device
        out = []
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size]
            x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
            out.append(self(x.to(device)).cpu())
        v = torch.cat(out)
        return {"foreground": v[:, 0:3].clamp(0, 1), "background": v[:, 3:6].clamp(0, 1),
                "center": v[:, 6:8] * self.image_size, "scale": v[:, 8]}


def train_probe(scenes: Scenes, config: ProbeConfig = ProbeConfig(), device: str | torch.device = "cpu",
                ) -> tuple[FactorProbe, dict]:
    """Train the probe on real images: mean squared error of the factors, each standardized by its std."""
    torch.manual_seed(config.seed)
    rng = torch.Generator().manual_seed(config.seed)
    index = torch.arange(len(scenes))
    if config.n_train is not None and config.n_train < len(scenes):
        index = torch.randperm(len(scenes), generator=rng)[:config.n_train]
    images, targets = scenes.images[index], FactorProbe.targets(scenes, index)
    spread = targets.std(0).clamp_min(1e-6).to(device)
    probe = FactorProbe(config, scenes.images.shape[-1]).to(device).train()
    opt = torch.optim.AdamW(probe.parameters(), lr=config.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.steps, pct_start=0.1)
    start = time.time()
    for _ in tqdm(range(config.steps), desc="factor probe", leave=False):
        idx = torch.randint(0, len(images), (config.batch_size,), generator=rng)
        loss = ((probe(images[idx].float().div(255).to(device)) - targets[idx].to(device)) / spread).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return probe.eval(), {"seconds": time.time() - start, "final_loss": loss.item()}


def factor_errors(read: dict[str, torch.Tensor], truth: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-image errors: colours as RGB distance, centre as pixel distance, scale as |difference|."""
    return {"foreground": (read["foreground"] - truth["foreground"]).norm(dim=1),
            "background": (read["background"] - truth["background"]).norm(dim=1),
            "center": (read["center"] - truth["center"]).norm(dim=1),
            "scale": (read["scale"] - truth["scale"]).abs()}


def same_class_partner(labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """For each image, the index of a random *other* image of the same class (seeded)."""
    rng = torch.Generator().manual_seed(seed)
    partner = torch.empty_like(labels)
    for c in labels.unique():
        idx = torch.nonzero(labels == c)[:, 0]
        if len(idx) < 2:
            partner[idx] = idx
            continue
        shift = torch.randint(1, len(idx), (len(idx),), generator=rng)
        partner[idx] = idx[(torch.arange(len(idx)) + shift) % len(idx)]
    return partner


def chance_errors(scenes: Scenes, seed: int = 0) -> dict[str, torch.Tensor]:
    """Factor errors of a random other image of the same class (ground truth vs ground truth)."""
    partner = same_class_partner(scenes.labels, seed)
    return factor_errors(scenes.factors(partner), scenes.factors())


def probe_train_or_load(scenes: Scenes, profile: str, config: ProbeConfig = ProbeConfig(),
                        device: str | torch.device = "cpu") -> tuple[FactorProbe, dict]:
    """The cached factor probe of a profile (trained on ``scenes``, the training split)."""
    from ..paths import checkpoint_dir, written_atomically

    key = hashlib.sha256(json.dumps({"config": dataclasses.asdict(config), "n": len(scenes),
                                     "recipe": dataclasses.asdict(scenes.recipe), "code": PROBE_CODE_VERSION},
                                    sort_keys=True).encode())
    path = checkpoint_dir(profile) / f"factor-probe-{key.hexdigest()[:12]}.pt"
    if path.is_file():
        state = torch.load(path, map_location=device, weights_only=False)
        probe = FactorProbe(config, scenes.images.shape[-1]).to(device)
        probe.load_state_dict(state["probe"])
        return probe.eval(), state["log"]
    probe, log = train_probe(scenes, config, device)
    with written_atomically(path) as tmp:
        torch.save({"probe": probe.state_dict(), "log": log, "config": dataclasses.asdict(config)}, tmp)
    return probe, log
