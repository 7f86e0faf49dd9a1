"""Training the inverse: progressive divide and conquer (the paper) and the baselines.

* :func:`fit_inverse` - cached entry point: split the model, train an :class:`InverseChain`
  with an :class:`InverseConfig`, store it in ``data/checkpoints/<profile>/zeroshot/`` under a
  hash of (model weights, cuts, config).
* progressive divide and conquer (``mode="progressive"``, the paper's method): for k = 1..K a
  short warm-up of g_k alone on its block-wise loss plus its local cycle term
  ||f_k(g_k(h_k)) - h_k|| (``block_steps`` each), then ``joint_steps`` of joint training of
  g_1..g_K on the full objective (block-wise + input-space from every depth + cycle,
  :func:`~.losses.zero_shot_loss`) with one Adam state and one cosine schedule. Most steps go to
  the joint phase: the chain is re-synchronized in pixel space for as long as it trains.
* the earlier schedule (``mode="stagewise"``, kept as an ablation): for every k, ``block_steps``
  on g_k alone, then ``finetune_steps`` fine-tuning g_1..g_k at depth k, each phase with a fresh
  Adam state and a cosine decay to zero. The chain gets a pixel-space gradient for only
  ``finetune_steps`` steps at its full depth; at equal steps it trails the progressive schedule
  by several dB (notebook 05 measures it).
* ablation (``mode="end_to_end"``): the same inverse architecture trained on the same
  synthesized data, all blocks at once from the first step, with the pixel loss from every depth
  (sum_k ||G_k(h_k) - x||, so it is a decoder for every depth like the full method) - no
  divide and conquer (no stages, no block-wise targets), no cycle terms.
* plain decoder (``mode="plain_decoder"``): one :class:`~.inverse.PlainDecoder` per depth
  (conv-BN-ReLU, nearest upsampling), each trained with pixel MSE only for the same number of
  steps as the chain - no blocks, no cycle.
* upper bound (``data="real"``, normally with ``mode="end_to_end"``): the same, on real training
  images (Dosovitskiy & Brox 2016 style pixel-loss decoders).

Every step draws a fresh batch from the source on the training device (its generator lives
there), so nothing is synthesized on the CPU for a GPU run.
* :func:`invert_activations_by_optimization` - per-image optimization of the input to match h_K
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
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .. import precision as precision_switch
from ..losses import total_variation
from ..paths import checkpoint_dir
from .inverse import NORMS, DecoderBank, InverseChain
from .losses import ZeroShotObjective, relative_mse, zero_shot_loss
from .gan import Generator, LatentPrior, generator_chain
from .split import BlockChain, split
from .synthetic import ImageSource, RealImages, assert_synthetic, make_generator, make_source

MODES = ("progressive", "stagewise", "end_to_end", "plain_decoder")


@dataclass(frozen=True)
class InverseConfig:
    """How an inverse is trained. Its hash (with the model's weights and the cuts) names the checkpoint."""

    data: str = "mix"              # synthesized-data kind (synthetic.KINDS); "real" only for the upper bound
    mode: str = "progressive"      # see MODES and the module docstring
    block_steps: int = 50          # per stage k: warm-up steps training g_k alone (block-wise + local cycle)
    joint_steps: int = 600         # progressive: joint steps of g_1..g_K on the full objective, one schedule
    finetune_steps: int = 0        # stagewise only: per stage k, steps fine-tuning g_1..g_k at depth k
    batch_size: int = 32
    lr: float = 2e-3               # Adam; cosine decay over each phase
    width_mult: float = 1.0        # inverse width = width_mult * max(C_in, C_out)
    inverse_depth: int = 1         # residual blocks per inverse block
    inverse_norm: str = "none"     # normalization in the inverse's residual blocks: "none" or "batch"
    decoder_width: int = 64        # plain decoder channels (mode="plain_decoder")
    block_weight: float = 1.0      # weights of the objective (losses.ZeroShotObjective)
    input_weight: float = 1.0
    cycle_weight: float = 1.0
    pool_size: int = 512           # DeepInversion pool size (data="deepinversion")
    deepinversion_steps: int = 200 # Adam steps per DeepInversion batch (data="deepinversion")
    precision: str = "fp32"        # "fp32" | "bf16": autocast of the frozen chain's and the inverse's forward passes
    channels_last: bool = False    # NHWC layout for the chain, the inverse and the inputs during training
    seed: int = 0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.inverse_norm not in NORMS:
            raise ValueError(f"inverse_norm must be one of {NORMS}, not {self.inverse_norm!r}")
        precision_switch.check(self.precision)

    @property
    def objective(self) -> ZeroShotObjective:
        return ZeroShotObjective(self.block_weight, self.input_weight, self.cycle_weight)

    def total_steps(self, blocks: int) -> int:
        """Training steps of the chain (for ``plain_decoder``: of each depth's decoder); the
        progressive, end-to-end and plain-decoder modes take the same number."""
        if self.mode == "stagewise":
            return blocks * (self.block_steps + self.finetune_steps)
        return blocks * self.block_steps + self.joint_steps


def profile_config(params: dict, data: str, mode: str = "progressive", blocks: int | None = None,
                   scale: int = 1, block_steps: int | None = None, joint_steps: int | None = None,
                   inverse_norm: str | None = None) -> InverseConfig:
    """The config notebook 05 (and ``scripts/budget_check.py``) trains from a profile's parameters.

    Every mode trains for the steps of the progressive schedule (``blocks`` x ``block_steps`` +
    ``joint_steps``, times ``scale``); the stage-wise schedule splits them evenly between its
    block and fine-tune phases, so it needs ``blocks`` (the number of cuts). ``inverse_norm``
    overrides the profile's normalization (notebook 05 trains its end-to-end rows with GroupNorm:
    trained end to end, BatchNorm's running statistics mix the distributions every block sees from
    different depths, and the chain breaks in eval mode; see ``tests/test_zeroshot.py``).
    """
    b = (params["block_steps"] if block_steps is None else block_steps) * scale
    j = (params["joint_steps"] if joint_steps is None else joint_steps) * scale
    finetune = 0
    if mode == "stagewise":
        if not blocks:
            raise ValueError("the stage-wise schedule needs the number of blocks to split the steps")
        b = finetune = (blocks * b + j) // (2 * blocks)
        j = 0
    return InverseConfig(data=data, mode=mode, block_steps=b, joint_steps=j, finetune_steps=finetune,
                         batch_size=params["batch_size"], lr=params["lr"], width_mult=params["width_mult"],
                         decoder_width=params["decoder_width"], pool_size=params["deepinversion_pool"],
                         deepinversion_steps=params["deepinversion_steps"], seed=params["seed"],
                         cycle_weight=params.get("cycle_weight", InverseConfig.cycle_weight),
                         inverse_norm=inverse_norm or params.get("inverse_norm", InverseConfig.inverse_norm),
                         precision=params.get("precision", InverseConfig.precision),
                         channels_last=params.get("channels_last", InverseConfig.channels_last))


def build_inverse(shapes, config: InverseConfig) -> nn.Module:
    """The untrained inverse a config trains: an :class:`InverseChain`, or a :class:`DecoderBank`."""
    if config.mode == "plain_decoder":
        return DecoderBank(shapes, config.decoder_width)
    return InverseChain(shapes, config.width_mult, config.inverse_depth, config.inverse_norm)


def weights_hash(module: nn.Module, exclude: tuple[str, ...] = ()) -> str:
    """Short sha256 of a module's state (names and values), leaving out entries whose name ends with
    one of ``exclude`` (e.g. spectral norm's power-iteration vectors ``("._u", "._v")``, whose initial
    iterations round differently on different CPUs)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        if exclude and name.endswith(exclude):
            continue
        h.update(name.encode())
        if tensor.is_meta:           # no data on the meta device (shape checks): hash the shape only
            h.update(str(tuple(tensor.shape)).encode())
        else:
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def config_key(model: nn.Module, cuts: Sequence[str], config: InverseConfig) -> str:
    fields = precision_switch.cache_fields(dataclasses.asdict(config))
    blob = json.dumps({"model": weights_hash(model), "cuts": list(cuts), **fields}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _cosine(optimizer: torch.optim.Optimizer, steps: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))


def _phase(params, steps: int, loss_fn, source: ImageSource, chain: BlockChain, config: InverseConfig,
           generator: torch.Generator | None, device, bar, log: list, label: str,
           depth: int | None = None) -> None:
    """One optimization phase: fresh inputs every step (``config.batch_size``, on ``device``),
    activations h_0..h_depth from the frozen chain, one Adam state (``config.lr``) and one cosine
    schedule over the phase. Under ``config.precision="bf16"`` the forward passes run in bf16
    autocast; the loss is reduced in fp32. ``config.channels_last`` puts the inputs in NHWC."""
    params = [p for p in params]
    for p in params:
        p.requires_grad_(True)
    if steps <= 0:
        return
    optimizer = torch.optim.Adam(params, lr=config.lr, betas=(0.9, 0.99))
    schedule = _cosine(optimizer, steps)
    for step in range(steps):
        x = precision_switch.to_memory_format(source.sample(config.batch_size, generator).to(device),
                                              config.channels_last)
        with precision_switch.autocast(config.precision, device):
            with torch.no_grad():
                hs = chain.activations(x, depth)
            loss, parts = loss_fn(hs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if (step % 10 == 0 or step == steps - 1) and not loss.is_meta:   # host syncs only when logging
            log.append({"phase": label, "step": step, "loss": float(loss.detach()),
                        **{k: float(v) for k, v in parts.items()}})
        bar.update(1)


def train_inverse(chain: BlockChain, config: InverseConfig, source: ImageSource, device="cpu",
                  progress: bool = True, desc: str = "inverse") -> tuple[nn.Module, list[dict]]:
    """Train g_1..g_K for ``chain`` on ``source`` (synthesized unless ``config.data == "real"``).

    Returns the inverse in eval mode (an :class:`InverseChain`, or a :class:`DecoderBank` for
    ``mode="plain_decoder"``) and a log of losses. With ``config.channels_last`` the chain and the
    inverse train in NHWC; both leave in the contiguous layout (as a cached inverse loads).
    """
    with precision_switch.channels_last_during(chain, config.channels_last):
        inverse, log = _train_inverse(chain, config, source, device, progress, desc)
    return inverse.to(memory_format=torch.contiguous_format).eval(), log


def _train_inverse(chain: BlockChain, config: InverseConfig, source: ImageSource, device, progress: bool,
                   desc: str) -> tuple[nn.Module, list[dict]]:
    if config.data != "real":
        assert_synthetic(source)          # the zero-shot guarantee
    elif not isinstance(source, RealImages):
        raise ValueError('config.data == "real" expects a RealImages source')
    torch.manual_seed(config.seed)
    device = torch.device(device)
    generator = make_generator(config.seed + 1, device)
    chain = chain.to(device)
    inverse = precision_switch.to_memory_format(build_inverse(chain.shapes, config).to(device),
                                                config.channels_last)
    inverse.train()
    K, log = len(chain), []
    objective = config.objective
    total = config.total_steps(K)
    with tqdm(total=total * (K if config.mode == "plain_decoder" else 1), desc=desc, disable=not progress,
              leave=False) as bar:
        if config.mode == "plain_decoder":
            for k in range(1, K + 1):
                decoder = inverse.decoders[k - 1]

                def pixel_mse(hs, decoder=decoder, k=k):
                    loss = F.mse_loss(decoder(hs[k]).float(), hs[0].float())
                    return loss, {"input": loss.detach()}
                _phase(decoder.parameters(), total, pixel_mse, source, chain, config, generator, device, bar, log,
                       f"decoder{k}", depth=k)
            return inverse.eval(), log
        if config.mode == "end_to_end":
            pixel_only = ZeroShotObjective(block_weight=0.0, input_weight=1.0, cycle_weight=0.0)

            def pixel(hs):   # sum_k rel(G_k(h_k), x): a decoder from every depth, all blocks at once
                loss, parts = zero_shot_loss(chain, inverse, hs, K, pixel_only)
                return loss, {"input": parts["input"]}
            _phase(inverse.parameters(), total, pixel, source, chain, config, generator, device, bar, log, "end_to_end")
            return inverse.eval(), log
        for k in range(1, K + 1):
            g_k, f_k = inverse.inverses[k - 1], chain.blocks[k - 1]

            def local(hs, g_k=g_k, f_k=f_k, k=k):
                h_prev = g_k(hs[k])
                block = relative_mse(h_prev, hs[k - 1])
                cycle = relative_mse(f_k(h_prev), hs[k])
                return objective.block_weight * block + objective.cycle_weight * cycle, {
                    "block": block.detach(), "cycle": cycle.detach()}
            for p in inverse.parameters():
                p.requires_grad_(False)
            _phase(g_k.parameters(), config.block_steps, local, source, chain, config, generator, device, bar, log,
                   f"block{k}", depth=k)
            if config.mode == "stagewise":
                _phase(inverse.inverses[:k].parameters(), config.finetune_steps,
                       lambda hs, k=k: zero_shot_loss(chain, inverse, hs, k, objective), source, chain, config,
                       generator, device, bar, log, f"finetune1..{k}", depth=k)
        if config.mode == "progressive":
            _phase(inverse.parameters(), config.joint_steps,
                   lambda hs: zero_shot_loss(chain, inverse, hs, K, objective), source, chain, config,
                   generator, device, bar, log, f"joint1..{K}")
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
        inverse = build_inverse(chain.shapes, config)
        inverse.load_state_dict(load_file(str(weights)))
        return chain, inverse.to(device).eval(), json.loads(meta.read_text())
    start = time.perf_counter()
    if source is None:
        if config.data == "real":
            source = RealImages(real_images)
        elif config.data == "latent_prior":
            source = LatentPrior(chain.shapes[0][0], device)
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


def invert_activations_by_optimization(chain: BlockChain, images: torch.Tensor, depth: int, steps: int = 500,
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
