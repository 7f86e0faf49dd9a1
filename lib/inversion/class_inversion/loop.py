"""The one optimization loop of class inversion (PII, DeepDream, DeepInversion, feature visualization).

A method is an objective (weighted :mod:`.objectives` terms), a list of random transforms
(:mod:`.augmentations`) and a stage schedule; this loop does the rest, as in PII's code
(Ghiasi et al. 2022, section 3 and appendix): uniform-noise init in [0, 1]; for each zoom stage a
fresh Adam with a cosine learning-rate decay over the stage's steps; after every step the image is
clamped to [0, 1]. At every step the image (stage size s) is transformed (e.g. jitter -> ensemble
of B copies -> ColorShift) and classified, either at its own size s (``stage_input="stage"``: what
the authors' code does for a fully convolutional network, whose cost then grows with s^2) or
after a bilinear resize to the model's input size S (``"upsample"``: needed by models with a fixed
input size, such as ViTs and MLP-Mixers).

The forward pass runs under one precision switch (:mod:`inversion.precision`): ``precision="bf16"``
is bfloat16 autocast, ``channels_last=True`` the NHWC memory layout for convolutions. The image,
Adam's state and the losses stay float32.

Unlike the authors' code (one class per run), the loop inverts **many targets in one batch**:
N targets x B copies images per forward pass. Every target's image is an independent parameter;
the targets only share the forward pass (and, for DeepInversion, the batch statistics).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .. import precision as precision_switch
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


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """The loop's seeded generator, on ``device``. PyTorch's ``meta`` device (shapes only, used by
    the device-placement tests in place of a GPU) has no generator: there the draws are made by a
    CPU generator and moved to the batch's device, as every transform does with its draws."""
    if device.type == "meta":
        return torch.Generator().manual_seed(seed)
    return torch.Generator(device=device).manual_seed(seed)


def _host(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` on the CPU (one copy at the end of a run); a meta tensor, which has no values, stays."""
    return tensor if tensor.is_meta else tensor.cpu()


def input_size(model: nn.Module, default: int | None = None) -> int:
    """The model's native input side (``Classifier.input_size``), else ``default``."""
    size = getattr(model, "input_size", None)
    if size is None:
        size = default
    if size is None:
        raise ValueError("the model has no input_size attribute: pass size= explicitly")
    return int(size)


STAGE_INPUTS = ("upsample", "stage")


@torch.no_grad()
def accepts_size(model: nn.Module, size: int, device: torch.device | None = None) -> bool:
    """Whether ``model`` classifies a (1, 3, size, size) batch (a fully convolutional network with
    global pooling does; a ViT or MLP-Mixer built for one input size raises or returns another shape)."""
    device = device if device is not None else model_device(model)
    classes = getattr(getattr(model, "config", None), "num_classes", None)
    try:
        out = model(torch.zeros(1, 3, size, size, device=device))
    except (RuntimeError, AssertionError, ValueError):
        return False
    return out.dim() == 2 and out.shape[0] == 1 and (classes is None or out.shape[1] == classes)


def optimize(model: nn.Module, targets: torch.Tensor | Sequence[int],
             terms: Sequence[tuple[float, Term]],
             transforms: Sequence[Transform] | Callable[[int], Sequence[Transform]],
             stages: Sequence[Stage], *, lr: float = 0.01, betas: tuple[float, float] = (0.5, 0.99),
             border: int = 0, seed: int = 0, device: str | torch.device | None = None,
             size: int | None = None, stage_input: str = "upsample", precision: str = "fp32",
             channels_last: bool = False, progress: bool = True, desc: str = "inversion") -> InversionResult:
    """Optimize one image per target; returns them at the model's input size, in [0, 1].

    Args:
        model: frozen classifier taking RGB in [0, 1] (normalization inside), in eval mode.
        targets: (N,) class indices (or unit indices for feature visualization).
        terms: ``(weight, term)`` pairs; the loss is their weighted sum.
        transforms: applied in order to the (resized) images each step with one seeded generator;
            or a function of the side length the transforms see (the stage size with
            ``stage_input="stage"``, else ``size``) that returns them (e.g. jitter scaled to it).
        stages: the zoom schedule (:func:`.augmentations.zoom_stages`); each stage restarts Adam
            and its cosine schedule.
        lr, betas: Adam's peak learning rate and betas (PII: 0.01, (0.5, 0.99)).
        border: noise border (pixels) around the upsampled previous stage image (0: pure zoom).
        seed: seeds the init noise and every random transform (same seed, same images).
        device: where to run (default: the model's device).
        size: input side of the model (default: ``model.input_size``).
        stage_input: ``"upsample"`` - resize every stage's image to ``size`` before the model;
            ``"stage"`` - feed it at the stage's own size (fully convolutional models only).
        precision: ``"fp32"`` or ``"bf16"`` (autocast of the forward pass, :mod:`inversion.precision`).
        channels_last: NHWC layout for the model's convolutions and the batch during the run (the
            model's layout is restored afterwards).
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
    if stage_input not in STAGE_INPUTS:
        raise ValueError(f"stage_input must be one of {STAGE_INPUTS}, not {stage_input!r}")
    precision_switch.check(precision)
    transforms_at = transforms if callable(transforms) else (lambda _size, fixed=tuple(transforms): fixed)
    generator = make_generator(seed, device)
    n, image = len(targets), None
    names = [t.name for _, t in terms]
    history = {name: [] for name in ["loss", *names]}
    total = sum(s.steps for s in stages)
    start = time.perf_counter()
    for _, term in terms:
        term.attach(model)
    try:
        with tqdm(total=total, desc=desc, disable=not progress, leave=False) as bar, \
                precision_switch.channels_last_during(model, channels_last):
            for stage in stages:
                image = grow(image, stage.size, border if image is not None else 0, n, generator)
                image = image.to(device).requires_grad_(True)
                optimizer = torch.optim.Adam([image], lr=lr, betas=betas, eps=1e-8)
                schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, stage.steps))
                seen = stage.size if stage_input == "stage" else size
                stage_transforms = transforms_at(seen)
                for _ in range(stage.steps):
                    optimizer.zero_grad(set_to_none=True)
                    x = resize(image, seen)
                    for t in stage_transforms:
                        x = t(x, generator)
                    copies = x.shape[0] // n
                    step_targets = targets.repeat_interleave(copies) if copies > 1 else targets
                    x = precision_switch.to_memory_format(x, channels_last)
                    with precision_switch.autocast(precision, device):
                        logits = model(x)
                    step = Step(image=image, augmented=x, logits=logits.float(), targets=step_targets)
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
                           history={k: _host(torch.stack(v).float()) if v else torch.empty(0)
                                    for k, v in history.items()},
                           seconds=time.perf_counter() - start, steps=total)
