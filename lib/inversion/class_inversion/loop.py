"""The one optimization loop of class inversion (PII, DeepDream, DeepInversion, feature visualization).

A method is an objective (weighted :mod:`.objectives` terms), a list of random transforms
(:mod:`.augmentations`) and a stage schedule; this loop does the rest, as in PII's code
(Ghiasi et al. 2022, section 3 and appendix): uniform-noise init in [0, 1]; for each zoom stage a
fresh Adam with a cosine learning-rate decay over the stage's steps; after every step the image is
clamped to [0, 1]. At every step the image (stage size s) is resized to the model's input size S,
transformed (e.g. jitter -> ensemble of B copies -> ColorShift) and classified.

Unlike the authors' code (one class per run), the loop inverts **many targets in one batch**:
N targets x B copies images per forward pass. Every target's image is an independent parameter;
the targets only share the forward pass (and, for DeepInversion, the batch statistics).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .augmentations import Transform, grow, resize
from .objectives import Step, Term


@dataclass(frozen=True)
class Stage:
    """One stage of the schedule: optimize an image of ``size`` pixels for ``steps`` steps."""

    size: int
    steps: int


@dataclass
class InversionResult:
    """Images in [0, 1] (N, C, S, S), their targets, and the per-step loss history."""

    images: torch.Tensor
    targets: torch.Tensor
    history: dict[str, torch.Tensor]   # "loss" and each term's name -> (total steps,) unweighted values
    seconds: float
    steps: int

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / max(1, len(self.targets))


def model_device(model: nn.Module) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def input_size(model: nn.Module, default: int | None = None) -> int:
    """The model's native input side (``Classifier.input_size``), else ``default``."""
    size = getattr(model, "input_size", None)
    if size is None:
        size = default
    if size is None:
        raise ValueError("the model has no input_size attribute: pass size= explicitly")
    return int(size)


def optimize(model: nn.Module, targets: torch.Tensor | Sequence[int],
             terms: Sequence[tuple[float, Term]], transforms: Sequence[Transform],
             stages: Sequence[Stage], *, lr: float = 0.01, betas: tuple[float, float] = (0.5, 0.99),
             border: int = 0, seed: int = 0, device: str | torch.device | None = None,
             size: int | None = None, progress: bool = True, desc: str = "inversion") -> InversionResult:
    """Optimize one image per target; returns them at the model's input size, in [0, 1].

    Args:
        model: frozen classifier taking RGB in [0, 1] (normalization inside), in eval mode.
        targets: (N,) class indices (or unit indices for feature visualization).
        terms: ``(weight, term)`` pairs; the loss is their weighted sum.
        transforms: applied in order to the (resized) images each step with one seeded generator.
        stages: the zoom schedule (:func:`.augmentations.zoom_stages`); each stage restarts Adam
            and its cosine schedule.
        lr, betas: Adam's peak learning rate and betas (PII: 0.01, (0.5, 0.99)).
        border: noise border (pixels) around the upsampled previous stage image (0: pure zoom).
        seed: seeds the init noise and every random transform (same seed, same images).
        device: where to run (default: the model's device).
        size: input side of the model (default: ``model.input_size``).
    """
    device = torch.device(device) if device is not None else model_device(model)
    targets = torch.as_tensor(targets, dtype=torch.long).flatten().to(device)
    if targets.numel() == 0:
        raise ValueError("no targets to invert")
    if not stages:
        raise ValueError("need at least one stage")
    if model.training:
        raise ValueError("put the model in eval mode: inversion must not update BatchNorm statistics")
    size = input_size(model, size)
    generator = torch.Generator(device=device).manual_seed(seed)
    n, image = len(targets), None
    names = [t.name for _, t in terms]
    history = {name: [] for name in ["loss", *names]}
    total = sum(s.steps for s in stages)
    start = time.perf_counter()
    for _, term in terms:
        term.attach(model)
    try:
        with tqdm(total=total, desc=desc, disable=not progress, leave=False) as bar:
            for stage in stages:
                image = grow(image, stage.size, border if image is not None else 0, n, generator)
                image = image.to(device).requires_grad_(True)
                optimizer = torch.optim.Adam([image], lr=lr, betas=betas, eps=1e-8)
                schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, stage.steps))
                for _ in range(stage.steps):
                    optimizer.zero_grad(set_to_none=True)
                    x = resize(image, size)
                    for t in transforms:
                        x = t(x, generator)
                    copies = x.shape[0] // n
                    step_targets = targets.repeat_interleave(copies) if copies > 1 else targets
                    step = Step(image=image, augmented=x, logits=model(x), targets=step_targets)
                    values = [term(step) for _, term in terms]
                    loss = sum(w * v for (w, _), v in zip(terms, values))
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    with torch.no_grad():
                        image.clamp_(0, 1)
                    history["loss"].append(loss.detach())
                    for name, v in zip(names, values):
                        history[name].append(v.detach())
                    bar.update(1)
    finally:
        for _, term in terms:
            term.detach()
    images = resize(image.detach(), size).clamp(0, 1)
    return InversionResult(images=images, targets=targets,
                           history={k: torch.stack(v).float().cpu() if v else torch.empty(0)
                                    for k, v in history.items()},
                           seconds=time.perf_counter() - start, steps=total)
