"""Factor probe: how much of each nuisance factor a reconstruction carries (this study's measure).

A small CNN regressor trained on *real* Fashion-Scenes images to read off the foreground
(garment) colour, the background colour, the garment-box centre and its scale. Applied to a
reconstruction, its reading is compared with the ground truth of the image the logits came
from. Its error on held-out real images is the ceiling of this measurement (a perfect
reconstruction scores no better). The "chance" reference is the error of a random *other*
image of the same class: what a reconstruction scores if it gets the class right and every
nuisance factor wrong in the typical way.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.fashion_scenes import Scenes

FACTOR_UNITS = {"foreground": "RGB distance", "background": "RGB distance", "center": "pixels",
                "scale": "fraction of image side"}


@dataclass(frozen=True)
class ProbeConfig:
    widths: tuple[int, ...] = (16, 32, 64)
    steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    n_train: int | None = 20000
    seed: int = 0


class FactorProbe(nn.Module):
    """CNN regressor: image in [0, 1] -> foreground RGB, background RGB, centre (px), scale."""

    def __init__(self, config: ProbeConfig = ProbeConfig(), image_size: int = 32):
        super().__init__()
        self.config, self.image_size = config, image_size
        layers, width = [], 3
        for out in config.widths:
            layers += [nn.Conv2d(width, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
            width = out
        self.features = nn.Sequential(*layers, nn.Flatten())
        side = image_size // 2 ** len(config.widths)
        self.head = nn.Sequential(nn.Linear(width * side * side, 128), nn.ReLU(), nn.Linear(128, 9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw 9-vector: fg (3), bg (3), centre / size (2), scale -- all roughly in [0, 1]."""
        return self.head(self.features(x * 2 - 1))

    @staticmethod
    def targets(scenes: Scenes, index=slice(None)) -> torch.Tensor:
        s = scenes.images.shape[-1]
        return torch.cat([scenes.foreground[index], scenes.background[index], scenes.center[index] / s,
                          scenes.scale[index, None]], 1)

    @torch.no_grad()
    def read(self, images: torch.Tensor, batch_size: int = 500) -> dict[str, torch.Tensor]:
        """The factors read from images (float in [0, 1] or uint8), in ground-truth units."""
        self.eval()
        out = []
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size]
            x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
            out.append(self(x))
        v = torch.cat(out)
        return {"foreground": v[:, 0:3].clamp(0, 1), "background": v[:, 3:6].clamp(0, 1),
                "center": v[:, 6:8] * self.image_size, "scale": v[:, 8]}


def train_probe(scenes: Scenes, config: ProbeConfig = ProbeConfig(), device: str | torch.device = "cpu",
                ) -> tuple[FactorProbe, dict]:
    """Train the probe on real images (mean squared error on the normalized factors)."""
    torch.manual_seed(config.seed)
    rng = torch.Generator().manual_seed(config.seed)
    index = torch.arange(len(scenes))
    if config.n_train is not None and config.n_train < len(scenes):
        index = torch.randperm(len(scenes), generator=rng)[:config.n_train]
    images, targets = scenes.images[index], FactorProbe.targets(scenes, index)
    probe = FactorProbe(config, scenes.images.shape[-1]).to(device).train()
    opt = torch.optim.AdamW(probe.parameters(), lr=config.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.steps, pct_start=0.1)
    start = time.time()
    for _ in tqdm(range(config.steps), desc="factor probe", leave=False):
        idx = torch.randint(0, len(images), (config.batch_size,), generator=rng)
        loss = F.mse_loss(probe(images[idx].float().div(255).to(device)), targets[idx].to(device))
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
    import dataclasses
    import hashlib
    import json

    from ..paths import checkpoint_dir

    key = hashlib.sha256(json.dumps({"config": dataclasses.asdict(config), "n": len(scenes),
                                     "recipe": dataclasses.asdict(scenes.recipe)}, sort_keys=True).encode())
    path = checkpoint_dir(profile) / f"factor-probe-{key.hexdigest()[:12]}.pt"
    if path.is_file():
        state = torch.load(path, map_location=device, weights_only=False)
        probe = FactorProbe(config, scenes.images.shape[-1]).to(device)
        probe.load_state_dict(state["probe"])
        return probe.eval(), state["log"]
    probe, log = train_probe(scenes, config, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"probe": probe.state_dict(), "log": log}, path)
    return probe, log
