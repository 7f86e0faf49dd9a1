"""Class-inversion methods as configurations of the one loop (:func:`.loop.optimize`).

* :class:`PIIConfig` - Plug-In Inversion (Ghiasi et al., ICML 2022): cross-entropy only, zoom
  schedule, jitter, ensemble of B copies, ColorShift; Adam (0.5, 0.99), lr 0.01, cosine per stage.
  The dataclass defaults are the paper's (ImageNet, 224 px, 7 x 400 steps); the 32 px profiles
  override the step count (set by the CPU budget) and the ensemble size (notebook 01's ablation
  measures ensemble size and ColorShift strength).
* :class:`DeepDreamConfig` - cross-entropy + TV + L2 priors + jitter (Mordvintsev et al. 2015),
  run with the same optimizer and step budget as PII, one stage, no ensemble, no ColorShift.
* :class:`DeepInversionConfig` - DeepDream + BatchNorm-statistics loss (first layer 10x) +
  random flips (Yin et al., CVPR 2020).

``invert(model, targets, config, seed=..., device=...)`` runs any of them; ``pii``,
``deep_dream`` and ``deep_inversion`` are shortcuts.

Speed fields shared by the configs (they change the cost, and the numbers only within float
tolerance or a measured noise band): ``precision`` ("fp32" | "bf16" autocast) and
``channels_last`` (:mod:`inversion.precision`), ``targets_per_run`` (None: every target in one
batch; 1: one class per run, as in the authors' code) and, for PII, ``stage_input``: "auto" feeds a
model that accepts any input size each zoom stage at the stage's own size (the authors' recipe
for CNNs; 3.2x fewer pixels than upsampling all 7 stages to S), and upsamples for models with a
fixed input size (ViT, MLP-Mixer). :func:`legacy_mode` is the loop as first written (one class per
run, fp32, every stage upsampled), kept as the reference the speed-ups are measured against.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn

from .. import precision as precision_switch
from .augmentations import ColorShift, Ensemble, Flip, Jitter, PIIAugment, default_jitter, zoom_stages
from .loop import InversionResult, Stage, accepts_size, input_size, model_device, optimize
from .objectives import BatchNormStatistics, ClassCrossEntropy, L2Prior, Term, TotalVariation


@dataclass(frozen=True)
class PIIConfig:
    """Plug-In Inversion hyperparameters; defaults are the paper's (section 4, authors' code)."""

    steps_per_stage: int = 400          # Adam steps per zoom stage (paper: 400)
    stages: int = 7                     # zoom stages 2S/8 .. S (paper: 7); 1 = no zoom
    border: int = 0                     # noise border around the upsampled previous stage (0: pure zoom)
    lr: float = 0.01                    # Adam peak learning rate, cosine-decayed to 0 in each stage
    betas: tuple[float, float] = (0.5, 0.99)
    copies: int = 16                    # ensemble size B ("as large as memory allows": 21 for ResNet-50)
    jitter: int | None = None           # max circular shift in px (None: S/7, i.e. 32 at 224, 5 at 32)
    color_shift: float = 1.0            # ColorShift strength a = b (mu ~ U(-a, a), sigma = exp(U(-b, b)))
    flip: bool = False                  # random flips (in the authors' code, unused)
    stage_input: str = "auto"           # "auto" | "stage" | "upsample": what size the model sees per stage
    targets_per_run: int | None = None  # None: all targets in one batch; 1: one class per run (authors' code)
    precision: str = "fp32"             # "fp32" | "bf16" (autocast of the forward pass)
    channels_last: bool = False         # NHWC layout for the convolutions

    name = "PII"

    def __post_init__(self):
        _check_speed_fields(self)
        if self.stage_input not in STAGE_INPUTS:
            raise ValueError(f"stage_input must be one of {STAGE_INPUTS}, not {self.stage_input!r}")

    def stage_list(self, size: int) -> list[Stage]:
        return [Stage(s, self.steps_per_stage) for s in zoom_stages(size, self.stages)]

    def transforms(self, size: int, seen: int | None = None) -> list:
        """The per-step transforms for a model of input side ``size`` that sees images of side
        ``seen`` (a zoom stage fed at its own size): the jitter range shrinks in proportion."""
        jitter = default_jitter(size) if self.jitter is None else self.jitter
        if seen is not None and seen != size:
            jitter = round(jitter * seen / size)
        if not self.flip:  # the paper's augmentations, fused (inversion.kernels on CUDA)
            return [PIIAugment(jitter, self.copies, self.color_shift, self.color_shift)]
        out = [Jitter(jitter), Flip(), Ensemble(self.copies)]
        if self.color_shift > 0:
            out.append(ColorShift(self.color_shift, self.color_shift))
        return out

    def terms(self) -> list[tuple[float, Term]]:
        return [(1.0, ClassCrossEntropy())]

    @property
    def total_steps(self) -> int:
        return self.steps_per_stage * self.stages


@dataclass(frozen=True)
class DeepDreamConfig:
    """DeepDream: cross-entropy + image priors (TV, L2) + jitter, no zoom/ensemble/ColorShift."""

    steps: int = 2800                   # same budget as PII's 7 x 400
    lr: float = 0.05                    # at 32 px, 140 steps: 0.05 beat PII's 0.01 (notebook 01 report)
    betas: tuple[float, float] = (0.5, 0.99)
    jitter: int | None = None           # None: S/7
    tv_weight: float = 50.0             # TotalVariation weight (mean squared neighbour differences, [0, 1]
                                        # pixels); at 32 px, 50 beat 1, 5, 20, 100 for DeepDream on ResNet-20
    l2_weight: float = 0.5              # weight of L2Prior (squared distance from mid-grey)
    flip: bool = False
    targets_per_run: int | None = None  # None: all targets in one batch (DeepInversion: shared BN statistics)
    precision: str = "fp32"             # "fp32" | "bf16" (autocast of the forward pass)
    channels_last: bool = False         # NHWC layout for the convolutions

    name = "DeepDream"

    def __post_init__(self):
        _check_speed_fields(self)

    def stage_list(self, size: int) -> list[Stage]:
        return [Stage(size, self.steps)]

    def transforms(self, size: int) -> list:
        jitter = default_jitter(size) if self.jitter is None else self.jitter
        return [Jitter(jitter)] + ([Flip()] if self.flip else [])

    def terms(self) -> list[tuple[float, Term]]:
        return [(1.0, ClassCrossEntropy()), (self.tv_weight, TotalVariation()), (self.l2_weight, L2Prior())]

    @property
    def total_steps(self) -> int:
        return self.steps


@dataclass(frozen=True)
class DeepInversionConfig(DeepDreamConfig):
    """DeepInversion: DeepDream + BatchNorm statistics (first layer 10x) + flips (Yin et al. 2020)."""

    bn_weight: float = 0.05             # weight of the BatchNorm-statistics loss (Eq. 4)
    first_bn_weight: float = 10.0       # the first BatchNorm layer's multiplier (authors' code: 10)
    flip: bool = True

    name = "DeepInversion"

    def terms(self) -> list[tuple[float, Term]]:
        return super().terms() + [(self.bn_weight, BatchNormStatistics(self.first_bn_weight))]


Config = PIIConfig | DeepDreamConfig | DeepInversionConfig
STAGE_INPUTS = ("auto", "stage", "upsample")


def _check_speed_fields(config) -> None:
    precision_switch.check(config.precision)
    if config.targets_per_run is not None and config.targets_per_run < 1:
        raise ValueError(f"targets_per_run must be None or >= 1, not {config.targets_per_run}")


def legacy_mode(config: PIIConfig) -> PIIConfig:
    """The loop as first written: one class per run, fp32, every zoom stage upsampled to the
    model's input size (the reference for the speed-ups; same hyperparameters otherwise)."""
    return dataclasses.replace(config, stage_input="upsample", targets_per_run=1, precision="fp32",
                               channels_last=False)


def resolve_stage_input(model: nn.Module, config: Config) -> str:
    """``"stage"`` or ``"upsample"``: what ``config`` feeds ``model`` at each zoom stage.

    ``"auto"`` probes the model with one image of the smallest stage size: a model that classifies
    it (a CNN with global pooling) gets each stage at its own size, one that fails or returns
    another shape (a ViT or MLP-Mixer with a fixed patch grid) gets the image upsampled.
    """
    mode = getattr(config, "stage_input", "upsample")
    stages = config.stage_list(input_size(model))
    if mode == "auto":
        smallest = min(s.size for s in stages)
        return "stage" if smallest == input_size(model) or accepts_size(model, smallest) else "upsample"
    return mode
METHODS: dict[str, type] = {"pii": PIIConfig, "deepdream": DeepDreamConfig, "deepinversion": DeepInversionConfig}


def _targets(model: nn.Module, targets) -> torch.Tensor:
    targets = torch.as_tensor(targets, dtype=torch.long).flatten()
    classes = getattr(getattr(model, "config", None), "num_classes", None)
    if classes is not None and targets.numel() and (targets.min() < 0 or targets.max() >= classes):
        raise ValueError(f"targets must be class indices in [0, {classes}), got {targets.tolist()}")
    return targets


def fit_targets_per_run(model: nn.Module, n_targets: int, copies: int, size: int, precision: str = "fp32",
                        channels_last: bool = False, device: str | torch.device | None = None) -> int:
    """How many targets (each ``copies`` images at ``size`` px) one batch of :func:`invert` can hold on
    ``device``: ``n_targets`` if a forward and backward pass of all ``n_targets * copies`` images fits
    in memory, else halved until it does (at least 1). One probe pass per try.

    On a GPU, :func:`invert` calls it when the config says ``targets_per_run=None`` (all in one
    batch), so a smaller GPU splits the batch instead of running out of memory (e.g. PII of ViT-B/16
    with 10 targets x 16 copies at 224 px needs 30-37 GiB; the targets are then inverted in runs of
    fewer targets, each with its own seed, as with an explicit ``targets_per_run``)."""
    device = torch.device(device) if device is not None else model_device(model)
    n = max(1, int(n_targets))
    while True:
        try:
            x = torch.rand(n * copies, 3, size, size, device=device, requires_grad=True)
            with precision_switch.autocast(precision, device):
                out = model(precision_switch.to_memory_format(x, channels_last))
            out.float().logsumexp(1).sum().backward()
            return n
        except torch.OutOfMemoryError:
            if n == 1:
                raise
            n = (n + 1) // 2
        finally:
            x = out = None
            if device.type == "cuda":
                torch.cuda.empty_cache()


def invert(model: nn.Module, targets: torch.Tensor | Sequence[int], config: Config | None = None, *,
           seed: int = 0, device: str | torch.device | None = None, progress: bool = True,
           desc: str | None = None) -> InversionResult:
    """Invert ``targets`` (class indices) of ``model`` with a method's config, all in one batch."""
    config = config if config is not None else PIIConfig()
    if isinstance(config, DeepInversionConfig) and not BatchNormStatistics.layers(model):
        raise ValueError(f"DeepInversion is only defined for models with BatchNorm layers; "
                         f"{getattr(model, 'name', type(model).__name__)!r} has none")
    size = input_size(model)
    targets = _targets(model, targets)
    stage_input = resolve_stage_input(model, config)
    if stage_input == "stage" and isinstance(config, PIIConfig):
        transforms = lambda seen: config.transforms(size, seen)  # noqa: E731
    else:
        transforms = config.transforms(size)
    per_run = config.targets_per_run or max(1, len(targets))
    run_device = torch.device(device) if device is not None else model_device(model)
    if config.targets_per_run is None and run_device.type == "cuda":   # all targets in one batch, if it fits
        per_run = fit_targets_per_run(model, per_run, getattr(config, "copies", 1), size, config.precision,
                                      config.channels_last, run_device)
    desc = desc or f"{config.name} {getattr(model, 'name', '')}".strip()
    runs = [optimize(model, targets[i:i + per_run], config.terms(), transforms, config.stage_list(size),
                     lr=config.lr, betas=config.betas, border=getattr(config, "border", 0),
                     seed=seed + i // per_run, device=device, stage_input=stage_input,
                     precision=config.precision, channels_last=config.channels_last,
                     progress=progress, desc=desc)
            for i in range(0, max(1, len(targets)), per_run)]
    if len(runs) == 1:
        return runs[0]
    return InversionResult(images=torch.cat([r.images for r in runs]), targets=torch.cat([r.targets for r in runs]),
                           history={k: torch.stack([r.history[k] for r in runs]).mean(0) for k in runs[0].history},
                           seconds=sum(r.seconds for r in runs), steps=runs[0].steps)


def pii(model: nn.Module, targets, config: PIIConfig | None = None, **kwargs) -> InversionResult:
    """Plug-In Inversion of ``targets``: see :func:`invert`."""
    return invert(model, targets, config if config is not None else PIIConfig(), **kwargs)


def deep_dream(model: nn.Module, targets, config: DeepDreamConfig | None = None, **kwargs) -> InversionResult:
    """DeepDream-style class inversion of ``targets``: see :func:`invert`."""
    return invert(model, targets, config if config is not None else DeepDreamConfig(), **kwargs)


def deep_inversion(model: nn.Module, targets: torch.Tensor | Sequence[int], steps: int = 400, *,
                   seed: int = 0, device: str | torch.device | None = None, progress: bool = True,
                   config: DeepInversionConfig | None = None) -> torch.Tensor:
    """DeepInversion images (Yin et al. 2020) of ``targets``: a (N, 3, S, S) tensor in [0, 1].

    Synthesizes one image per target class from the model alone (its class scores and its
    BatchNorm running statistics; no real data). ``steps`` is ignored when ``config`` is given.
    Raises ``ValueError`` for a model without BatchNorm.
    """
    config = config if config is not None else DeepInversionConfig(steps=steps)
    return invert(model, targets, config, seed=seed, device=device, progress=progress).images


def with_overrides(config: Config, **overrides) -> Config:
    """A copy of ``config`` with some fields replaced (unknown names are an error)."""
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"{type(config).__name__} has no fields {sorted(unknown)}; it has {sorted(fields)}")
    return dataclasses.replace(config, **overrides)


def with_speed(config: Config, family: str, precision: str | dict = "fp32",
               channels_last: bool | dict = False) -> Config:
    """``config`` with the precision switch of a model family: each of ``precision`` and
    ``channels_last`` is one value for every model or a dict by family (``"cnn"``, ``"vit"``,
    ``"mlp"``), so a profile can adopt bf16 only where it was measured to be faster and to keep
    the judged quality (a ViT step is slower in bf16 on a CPU)."""
    def pick(value, default):
        if isinstance(value, dict):
            return value.get(family, default)
        return value
    return dataclasses.replace(config, precision=pick(precision, "fp32"),
                               channels_last=bool(pick(channels_last, False)))
