"""Training recipes for the mini zoo: standard cross-entropy, label smoothing, mixup, PGD adversarial.

One loop (:func:`train`) serves every recipe; the objective only changes the loss of a batch.
Adversarial training follows Madry et al. 2018: the loss is taken on L2 PGD examples.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..precision import autocast, check as check_precision, eager_attention

OBJECTIVES = ("standard", "label_smoothing", "mixup", "adversarial")
TRAINING_CODE_VERSION = 3  # part of every checkpoint key: bump when training code changes results


@dataclass(frozen=True)
class Recipe:
    """How a zoo model is trained. The hash of this record names its checkpoint."""

    objective: str = "standard"     # one of OBJECTIVES
    epochs: float = 4.0             # passes over the training set (fractions allowed)
    batch_size: int = 128
    lr: float = 3e-3                # AdamW peak learning rate (one-cycle schedule)
    weight_decay: float = 0.05
    augment: bool = True            # random shift by up to max_shift px (edge replicate) + horizontal flip
    max_shift: int = 2              # largest shift of the augmentation, pixels
    label_smoothing: float = 0.1    # used by objective="label_smoothing"
    mixup_alpha: float = 0.4        # Beta(alpha, alpha) mixing weight, objective="mixup"
    pgd_eps: float = 0.5            # L2 radius of the attack, in [0, 1] pixel units
    pgd_steps: int = 2              # PGD steps during training (evaluation uses more)
    n_train: int | None = None      # training images (None: the whole split)
    seed: int = 0
    warmup: float = 0.1             # fraction of the steps the one-cycle schedule warms up
    precision: str = "fp32"         # forward pass in "fp32" or "bf16" autocast (inversion.precision)
    channels_last: bool = True      # NHWC memory for models with convolutions
    init: str | None = None         # registered model whose weights start the training (fine-tuning)

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, not {self.objective!r}")
        check_precision(self.precision)

    def key(self) -> str:
        blob = json.dumps({**dataclasses.asdict(self), "code": TRAINING_CODE_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _generator_on(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """``generator`` itself on its own device; elsewhere a fresh generator on ``device`` seeded from it
    (``None`` on PyTorch's ``meta`` device, which has no generator: shapes only)."""
    if generator is None or generator.device == device:
        return generator
    if device.type == "meta":
        return None
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    return torch.Generator(device=device).manual_seed(seed)


def pgd_l2(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
           step_size: float | None = None, generator: torch.Generator | None = None,
           precision: str = "fp32") -> torch.Tensor:
    """L2 projected gradient ascent on the cross-entropy (Madry et al. 2018), images kept in [0, 1].

    Starts from a random point in the ball; step size 2.5 * eps / steps.
    ``generator`` seeds the random start; the noise is always drawn on the input's device (a
    generator on another device seeds a fresh one there). ``precision`` is the forward pass's
    autocast mode (the perturbation itself stays float32).
    """
    step_size = step_size or 2.5 * eps / steps
    was_training = model.training
    model.eval()
    generator = _generator_on(generator, x.device)
    noise = torch.randn(x.shape, generator=generator, device=x.device)
    noise = noise / noise.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * eps * torch.rand(
        len(x), 1, 1, 1, generator=generator, device=x.device)
    delta = ((x + noise).clamp(0, 1) - x).detach()
    for _ in range(steps):
        delta.requires_grad_(True)
        with autocast(precision, x.device):
            logits = model(x + delta)
        loss = F.cross_entropy(logits.float(), y)
        (grad,) = torch.autograd.grad(loss, delta)
        grad = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        delta = delta.detach() + step_size * grad
        norm = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        delta = delta * (eps / norm.clamp_min(eps)).clamp(max=1.0)
        delta = ((x + delta).clamp(0, 1) - x).detach()
    model.train(was_training)
    return (x + delta).detach()


def pgd_linf(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
             step_size: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """L-inf PGD on the cross-entropy (Madry et al. 2018): signed-gradient steps, random start in the box.

    Step size 2.5 * eps / steps; images kept in [0, 1]; noise drawn on the input's device.
    """
    step_size = step_size or 2.5 * eps / steps
    was_training = model.training
    model.eval()
    generator = _generator_on(generator, x.device)
    noise = (torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1) * eps
    delta = ((x + noise).clamp(0, 1) - x).detach()
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(x + delta), y)
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + step_size * grad.sign()).clamp(-eps, eps)
        delta = ((x + delta).clamp(0, 1) - x).detach()
    model.train(was_training)
    return (x + delta).detach()


def augment(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random translation (edge-replicate padding, random crop) and horizontal flip, per image.

    The few random numbers are drawn from ``generator`` (on its own device, so a CPU generator gives
    the same draws whatever device trains); the images are transformed where they are."""
    n, _, h, w = x.shape
    device = x.device
    padded = F.pad(x, [max_shift] * 4, mode="replicate")
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator, device=generator.device).to(device)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator, device=generator.device).to(device)
    rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None].expand(n, x.shape[1], h, w + 2 * max_shift)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :].expand(n, x.shape[1], h, w)
    out = out.gather(3, cols)
    flip = (torch.rand(n, generator=generator, device=generator.device) < 0.5).to(device)
    return torch.where(flip.view(n, 1, 1, 1), out.flip(-1), out)


def batch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
               generator: torch.Generator) -> torch.Tensor:
    """The training loss of one batch under the recipe's objective (forward in the recipe's precision)."""
    def forward(inputs):
        with autocast(recipe.precision, inputs.device):
            return model(inputs).float()

    if recipe.objective == "label_smoothing":
        return F.cross_entropy(forward(x), y, label_smoothing=recipe.label_smoothing)
    if recipe.objective == "mixup":
        lam = float(torch.distributions.Beta(recipe.mixup_alpha, recipe.mixup_alpha).sample())
        perm = torch.randperm(len(x), generator=generator).to(x.device)
        logits = forward(lam * x + (1 - lam) * x[perm])
        return lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[perm])
    if recipe.objective == "adversarial":
        x = pgd_l2(model, x, y, recipe.pgd_eps, recipe.pgd_steps, generator=generator,
                   precision=recipe.precision)
    return F.cross_entropy(forward(x), y)


def train_step(model: nn.Module, opt: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
               recipe: Recipe, generator: torch.Generator, device: str | torch.device = "cpu",
               memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """One optimizer step of :func:`train` on a batch of uint8 ``images`` (wherever they are): the
    batch goes to ``device`` first, then it is augmented there (random draws from ``generator``) and
    the recipe's loss is minimized. Returns the batch loss, detached, on ``device`` (no host sync)."""
    x = images.to(device).float().div_(255)
    if recipe.augment:
        x = augment(x, generator, recipe.max_shift)
    x, y = x.contiguous(memory_format=memory_format), labels.to(device)
    loss = batch_loss(model, x, y, recipe, generator)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, recipe: Recipe,
          device: str | torch.device = "cpu", desc: str = "train",
          resume_file: str | Path | None = None, save_every: int = 200) -> dict:
    """Train ``model`` (a :class:`Classifier`, input in [0, 1]) in place; returns a training log.

    ``images`` are uint8 (N, 3, H, W); batches are converted to float on the fly. AdamW with a
    one-cycle cosine schedule (``recipe.warmup`` warm-up). Deterministic for a given seed on one
    machine and thread count. With ``resume_file``, the complete training state (weights,
    optimizer, schedule, random generators, position in the epoch) is saved there every
    ``save_every`` steps and training resumes from it, giving the same weights as an
    uninterrupted run; the file is removed when training ends.
    """
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    if recipe.n_train is not None:
        keep = torch.randperm(len(labels), generator=generator)[:recipe.n_train]
        images, labels = images[keep], labels[keep]
    # channels-last memory is ~1.35x faster for these small convnets on CPU (measured)
    channels_last = recipe.channels_last and any(isinstance(m, nn.Conv2d) for m in model.modules())
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device, memory_format=memory_format).train()
    if torch.device(device).type == "cpu":
        eager_attention(model)   # timm's fused attention is the slower one on a CPU (same math)
    steps_per_epoch = math.ceil(len(labels) / recipe.batch_size)
    total = max(1, round(recipe.epochs * steps_per_epoch))
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=total, pct_start=recipe.warmup)
    losses, step, order, position, elapsed = [], 0, None, 0, 0.0
    resume_file = Path(resume_file) if resume_file else None
    if resume_file is not None and resume_file.is_file():
        state = torch.load(resume_file, map_location="cpu", weights_only=True)
        if state["recipe_key"] != recipe.key():
            raise ValueError(f"{resume_file} belongs to another recipe; delete it to start over")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        losses, step, order, position, elapsed = (state["losses"], state["step"], state["order"],
                                                 state["position"], state["elapsed"])
        model.to(device, memory_format=memory_format).train()

    def save_state():
        tmp = resume_file.with_suffix(".tmp")
        torch.save({"recipe_key": recipe.key(), "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(), "losses": losses, "step": step, "order": order,
                    "position": position, "elapsed": elapsed + time.time() - start}, tmp)
        tmp.replace(resume_file)

    if resume_file is not None:
        resume_file.parent.mkdir(parents=True, exist_ok=True)
    start, pending = time.time(), []
    with tqdm(total=total, initial=step, desc=desc, leave=False) as bar:
        while step < total:
            if order is None or position >= len(order):
                order, position = torch.randperm(len(labels), generator=generator), 0
            idx = order[position:position + recipe.batch_size]
            position += recipe.batch_size
            loss = train_step(model, opt, images[idx], labels[idx], recipe, generator, device, memory_format)
            sched.step()
            pending.append(loss)
            step += 1
            bar.update()
            saving = resume_file is not None and step % save_every == 0 and step < total
            if step % 20 == 0 or saving:   # one device-to-host copy per 20 steps, not one per step
                losses.extend(torch.stack(pending).tolist())
                pending = []
                bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
            if saving:
                save_state()
    if pending:
        losses.extend(torch.stack(pending).tolist())
    if resume_file is not None:
        resume_file.unlink(missing_ok=True)
    model.to(memory_format=torch.contiguous_format).eval()
    return {"train_seconds": elapsed + time.time() - start, "steps": total,
            "final_loss": sum(losses[-50:]) / len(losses[-50:]), "loss_history": losses}


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 500,
            device: str | torch.device = "cpu") -> torch.Tensor:
    """Logits (float32, fp32 forward) for uint8 or float images (float expected in [0, 1])."""
    model.eval().to(device)
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size]
        x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
        out.append(model(x.to(device)).cpu())
    return torch.cat(out)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, **kwargs) -> float:
    return (predict_logits(model, images, **kwargs).argmax(1) == labels).float().mean().item()


def robust_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float,
                    steps: int = 10, batch_size: int = 250, seed: int = 0,
                    device: str | torch.device = "cpu", norm: str = "l2") -> float:
    """Accuracy on PGD adversarial examples (``steps`` steps, radius ``eps`` in the ``norm`` "l2" or "linf")."""
    attacks = {"l2": pgd_l2, "linf": pgd_linf}
    if norm not in attacks:
        raise ValueError(f"norm must be one of {sorted(attacks)}, not {norm!r}")
    generator = torch.Generator(device=device).manual_seed(seed)
    correct = 0
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].float().div(255).to(device)
        y = labels[i:i + batch_size].to(device)
        adv = attacks[norm](model, x, y, eps, steps, generator=generator)
        with torch.no_grad():
            correct += (model(adv).argmax(1) == y).sum().item()
    return correct / len(images)
