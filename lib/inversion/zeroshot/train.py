"""Training the inverse: progressive divide and conquer (the paper) and the baselines.

* :func:`fit_inverse` - cached entry point: split the model, train an :class:`InverseChain`
  with an :class:`InverseConfig`, store it in ``data/checkpoints/<profile>/zeroshot/`` under a
  hash of (model weights, cuts, config).
* progressive training (``mode="progressive"``): for k = 1..K, first train g_k alone on the
  block-wise loss plus its local cycle term ||f_k(g_k(h_k)) - h_k||, then fine-tune g_1..g_k on
  the full objective at depth k (:func:`~.losses.zero_shot_loss`).
* ablation (``mode="end_to_end"``): the same inverse architecture trained on the same
  synthesized data, all blocks at once from the first step, with the pixel loss from every depth
  (sum_k ||G_k(h_k) - x||, so it is a decoder for every depth like the full method) - no
  divide and conquer (no stages, no block-wise targets), no cycle terms.
* upper bound (``data="real"``, normally with ``mode="end_to_end"``): the same, on real training
  images (Dosovitskiy & Brox 2016 style pixel-loss decoders).
* :func:`invert_by_optimization` - per-image optimization of the input to match h_K
  (Mahendran & Vedaldi 2015 style, with total variation).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..paths import checkpoint_dir
from .inverse import InverseChain
from .losses import ZeroShotObjective, relative_mse, zero_shot_loss
from .gan import Generator, LatentPrior, generator_chain
from .split import BlockChain, split
from .synthetic import ImageSource, RealImages, assert_synthetic, make_source

MODES = ("progressive", "end_to_end")


@dataclass(frozen=True)
class InverseConfig:
    """How an inverse is trained. Its hash (with the model's weights and the cuts) names the checkpoint."""

    data: str = "lowpass"          # synthesized-data kind (synthetic.KINDS); "real" only for the upper bound
    mode: str = "progressive"      # "progressive" (divide and conquer + cycle) | "end_to_end" (ablation)
    block_steps: int = 150         # per stage k: steps training g_k alone (block-wise + local cycle)
    finetune_steps: int = 150      # per stage k: steps fine-tuning g_1..g_k on the full objective
    batch_size: int = 64
    lr: float = 2e-3               # Adam, cosine decay within each phase
    width_mult: float = 1.0        # inverse width = width_mult * max(C_in, C_out)
    inverse_depth: int = 1         # residual blocks per inverse block
    block_weight: float = 1.0      # weights of the objective (losses.ZeroShotObjective)
    input_weight: float = 1.0
    cycle_weight: float = 1.0
    pool_size: int = 512           # DeepInversion pool size (data="deepinversion")
    deepinversion_steps: int = 200 # Adam steps per DeepInversion batch (data="deepinversion")
    seed: int = 0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")

    @property
    def objective(self) -> ZeroShotObjective:
        return ZeroShotObjective(self.block_weight, self.input_weight, self.cycle_weight)

    def total_steps(self, blocks: int) -> int:
        return blocks * (self.block_steps + self.finetune_steps)


def weights_hash(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def config_key(model: nn.Module, cuts: Sequence[str], config: InverseConfig) -> str:
    blob = json.dumps({"model": weights_hash(model), "cuts": list(cuts), **dataclasses.asdict(config)},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _cosine(optimizer: torch.optim.Optimizer, steps: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))


def _phase(params, steps: int, lr: float, loss_fn, source: ImageSource, chain: BlockChain, batch: int,
           generator: torch.Generator, device, bar, log: list, label: str) -> None:
    """One optimization phase: fresh inputs every step, activations from the frozen chain."""
    params = [p for p in params]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.99))
    schedule = _cosine(optimizer, steps)
    for step in range(steps):
        x = source.sample(batch, generator).to(device)
        with torch.no_grad():
            hs = chain.activations(x)
        loss, parts = loss_fn(hs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 10 == 0 or step == steps - 1:
            log.append({"phase": label, "step": step, "loss": float(loss.detach()), **parts})
        bar.update(1)


def train_inverse(chain: BlockChain, config: InverseConfig, source: ImageSource, device="cpu",
                  progress: bool = True, desc: str = "inverse") -> tuple[InverseChain, list[dict]]:
    """Train g_1..g_K for ``chain`` on ``source`` (synthesized unless ``config.data == "real"``)."""
    if config.data != "real":
        assert_synthetic(source)          # the zero-shot guarantee
    elif not isinstance(source, RealImages):
        raise ValueError('config.data == "real" expects a RealImages source')
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed + 1)
    chain = chain.to(device)
    inverse = InverseChain(chain.shapes, config.width_mult, config.inverse_depth).to(device)
    inverse.train()
    K, log = len(chain), []
    objective = config.objective
    with tqdm(total=config.total_steps(K), desc=desc, disable=not progress, leave=False) as bar:
        if config.mode == "end_to_end":
            pixel_only = ZeroShotObjective(block_weight=0.0, input_weight=1.0, cycle_weight=0.0)

            def pixel(hs):   # sum_k rel(G_k(h_k), x): a decoder from every depth, all blocks at once
                loss, parts = zero_shot_loss(chain, inverse, hs, K, pixel_only)
                return loss, {"input": parts["input"]}
            _phase(inverse.parameters(), config.total_steps(K), config.lr, pixel, source, chain,
                   config.batch_size, generator, device, bar, log, "end_to_end")
            return inverse.eval(), log
        for k in range(1, K + 1):
            g_k, f_k = inverse.inverses[k - 1], chain.blocks[k - 1]

            def local(hs, g_k=g_k, f_k=f_k, k=k):
                h_prev = g_k(hs[k])
                block = relative_mse(h_prev, hs[k - 1])
                cycle = relative_mse(f_k(h_prev), hs[k])
                return objective.block_weight * block + objective.cycle_weight * cycle, {
                    "block": float(block.detach()), "cycle": float(cycle.detach())}
            for p in inverse.parameters():
                p.requires_grad_(False)
            _phase(g_k.parameters(), config.block_steps, config.lr, local, source, chain,
                   config.batch_size, generator, device, bar, log, f"block{k}")
            _phase(inverse.inverses[:k].parameters(), config.finetune_steps, config.lr,
                   lambda hs, k=k: zero_shot_loss(chain, inverse, hs, k, objective), source, chain,
                   config.batch_size, generator, device, bar, log, f"finetune1..{k}")
    for p in inverse.parameters():
        p.requires_grad_(True)
    return inverse.eval(), log


def fit_inverse(model: nn.Module, cuts: Sequence[str], config: InverseConfig, profile: str,
                device="cpu", real_images: torch.Tensor | None = None, source: ImageSource | None = None,
                cache: bool = True, progress: bool = True) -> tuple[BlockChain, InverseChain, dict]:
    """Split ``model`` at ``cuts`` and train (or load from the cache) its inverse.

    ``model`` is a classifier (split with :func:`~.split.split`) or a GAN :class:`~.gan.Generator`
    (split with :func:`~.gan.generator_chain`, trained on ``config.data == "latent_prior"``: z ~ N(0, I)).
    ``real_images`` is accepted only for ``config.data == "real"`` (the upper-bound baseline).
    Returns the frozen chain, the inverse (eval mode) and a record (key, train seconds, log).
    """
    if (real_images is not None) != (config.data == "real"):
        raise ValueError('pass real_images exactly when config.data == "real" (the upper-bound baseline)')
    chain = (generator_chain(model, cuts) if isinstance(model, Generator) else split(model, cuts)).to(device)
    name = getattr(model, "name", "") or type(model).__name__.lower()
    key = config_key(model, cuts, config)
    folder = checkpoint_dir(profile) / "zeroshot"
    weights, meta = folder / f"{name}-{key}.safetensors", folder / f"{name}-{key}.json"
    if cache and weights.is_file() and meta.is_file():
        inverse = InverseChain(chain.shapes, config.width_mult, config.inverse_depth)
        inverse.load_state_dict(load_file(str(weights)))
        return chain, inverse.to(device).eval(), json.loads(meta.read_text())
    start = time.perf_counter()
    if source is None:
        if config.data == "real":
            source = RealImages(real_images)
        elif config.data == "latent_prior":
            source = LatentPrior(chain.shapes[0][0])
        else:
            source = make_source(config.data, chain.shapes[0][-1], model=model, seed=config.seed,
                                 device=device, pool_size=config.pool_size,
                                 deepinversion_steps=config.deepinversion_steps)
    synth_seconds = time.perf_counter() - start
    inverse, log = train_inverse(chain, config, source, device, progress,
                                 desc=f"{name} {config.mode} {config.data}")
    record = {"key": key, "model": name, "cuts": list(cuts), "config": dataclasses.asdict(config),
              "synthesis_seconds": round(synth_seconds, 2),
              "train_seconds": round(time.perf_counter() - start - synth_seconds, 2),
              "zero_shot": config.data != "real", "log": log}
    if cache:
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous().cpu() for k, v in inverse.state_dict().items()}, str(weights))
        meta.write_text(json.dumps(record))
    return chain, inverse, record


@torch.no_grad()
def reconstruct(chain: BlockChain, inverse: InverseChain, images: torch.Tensor, depth: int,
                batch: int = 250, device="cpu") -> tuple[torch.Tensor, float]:
    """G_depth(f_{1..depth}(x)) clamped to [0, 1], and the inverse's seconds per image (encoding excluded)."""
    out, seconds = [], 0.0
    for start in range(0, len(images), batch):
        h = chain(images[start:start + batch].to(device), depth)
        t = time.perf_counter()
        out.append(inverse(h, depth=depth).clamp(0, 1).cpu())
        seconds += time.perf_counter() - t
    return torch.cat(out), seconds / len(images)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def invert_by_optimization(chain: BlockChain, images: torch.Tensor, depth: int, steps: int = 500,
                           lr: float = 0.05, tv_weight: float = 0.02, seed: int = 0, device="cpu",
                           record_at: Sequence[int] = (), progress: bool = True):
    """Baseline (c): x* = argmin_x rel(f_{1..depth}(x), h_depth) + tv * TV(x), Adam, x clamped to [0, 1].

    All images are optimized jointly (their losses are independent), so the wall time divided by the
    number of images is the time per image. Returns (x*, seconds per image, {step: snapshot}).
    """
    chain = chain.to(device)
    with torch.no_grad():
        target = chain(images.to(device), depth)
    g = torch.Generator().manual_seed(seed)
    x = (0.5 + 0.01 * torch.randn(images.shape, generator=g)).to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=lr, betas=(0.9, 0.99))
    schedule = _cosine(optimizer, steps)
    snapshots, start = {}, time.perf_counter()
    for step in tqdm(range(1, steps + 1), desc=f"optimize from depth {depth}", disable=not progress, leave=False):
        h = chain(x, depth)
        per_image = (h - target).pow(2).flatten(1).mean(1) / target.pow(2).flatten(1).mean(1).clamp_min(1e-8)
        loss = per_image.sum() + tv_weight * total_variation(x) * len(x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            x.clamp_(0, 1)
        if step in record_at:
            snapshots[step] = (x.detach().cpu().clone(), (time.perf_counter() - start) / len(images))
    seconds = (time.perf_counter() - start) / len(images)
    return x.detach().cpu(), seconds, snapshots
