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
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn

from .augmentations import ColorShift, Ensemble, Flip, Jitter, default_jitter, zoom_stages
from .loop import InversionResult, Stage, input_size, optimize
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

    name = "PII"

    def stage_list(self, size: int) -> list[Stage]:
        return [Stage(s, self.steps_per_stage) for s in zoom_stages(size, self.stages)]

    def transforms(self, size: int) -> list:
        jitter = default_jitter(size) if self.jitter is None else self.jitter
        out = [Jitter(jitter)]
        if self.flip:
            out.append(Flip())
        out.append(Ensemble(self.copies))
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

    name = "DeepDream"

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
METHODS: dict[str, type] = {"pii": PIIConfig, "deepdream": DeepDreamConfig, "deepinversion": DeepInversionConfig}


def _targets(model: nn.Module, targets) -> torch.Tensor:
    targets = torch.as_tensor(targets, dtype=torch.long).flatten()
    classes = getattr(getattr(model, "config", None), "num_classes", None)
    if classes is not None and targets.numel() and (targets.min() < 0 or targets.max() >= classes):
        raise ValueError(f"targets must be class indices in [0, {classes}), got {targets.tolist()}")
    return targets


def invert(model: nn.Module, targets: torch.Tensor | Sequence[int], config: Config | None = None, *,
           seed: int = 0, device: str | torch.device | None = None, progress: bool = True,
           desc: str | None = None) -> InversionResult:
    """Invert ``targets`` (class indices) of ``model`` with a method's config, all in one batch."""
    config = config if config is not None else PIIConfig()
    if isinstance(config, DeepInversionConfig) and not BatchNormStatistics.layers(model):
        raise ValueError(f"DeepInversion is only defined for models with BatchNorm layers; "
                         f"{getattr(model, 'name', type(model).__name__)!r} has none")
    size = input_size(model)
    return optimize(model, _targets(model, targets), config.terms(), config.transforms(size),
                    config.stage_list(size), lr=config.lr, betas=config.betas,
                    border=getattr(config, "border", 0), seed=seed, device=device, progress=progress,
                    desc=desc or f"{config.name} {getattr(model, 'name', '')}".strip())


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
