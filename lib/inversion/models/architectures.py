"""Classifier architectures of the mini zoo, built from timm building blocks at 32x32.

Every zoo model is wrapped in :class:`Classifier`, which takes RGB images in [0, 1] and applies
the model's own input normalization, so inversion code never handles normalization constants.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from timm.models.mlp_mixer import MlpMixer
from timm.models.resnet import BasicBlock
from timm.models.vision_transformer import VisionTransformer


@dataclass(frozen=True)
class InputConfig:
    """How to feed a model (timm's data config, reduced to what inversion needs)."""

    input_size: tuple[int, int, int] = (3, 32, 32)
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    num_classes: int = 10
    class_names: tuple[str, ...] = field(default=(), compare=False)
    interpolation: str = "bilinear"   # how images are resized to input_size (timm's data config)
    crop_pct: float = 0.875           # centre crop of the evaluation transform (timm's data config)


class Classifier(nn.Module):
    """A network plus its input normalization: ``forward`` takes RGB in [0, 1], returns logits."""

    def __init__(self, net: nn.Module, config: InputConfig, name: str = ""):
        super().__init__()
        self.net, self.config, self.name = net, config, name
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))

    @property
    def input_size(self) -> int:
        return self.config.input_size[-1]

    def extra_repr(self) -> str:
        return f"name={self.name!r}, input_size={self.config.input_size}"


class ResizedInput(Classifier):
    """A :class:`Classifier` fed images of another side: ``forward`` resizes them to the model's
    ``input_size`` first (``config.interpolation``, antialiased when shrinking, clamped to [0, 1]).

    For the study's small images of large-input models (128 px ImageNet crops into a 224 px
    ResNet-50 or ViT). ``input_size`` reports the side of the images it is *fed*
    (``image_size``), so code that makes images for a classifier (optimization-based inversion)
    makes them at the data's side. The network, the normalization and the ``state_dict`` are those
    of the wrapped classifier, so a weight fingerprint of either is the same.
    """

    def __init__(self, classifier: Classifier, image_size: int):
        super().__init__(classifier.net, classifier.config, classifier.name)
        self.image_size = int(image_size)
        self.to(classifier.mean.device).train(classifier.training)

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        side = self.config.input_size[-1]
        if x.shape[-2:] == (side, side):
            return x
        mode = self.config.interpolation if self.config.interpolation in ("bilinear", "bicubic") else "bilinear"
        out = torch.nn.functional.interpolate(x, size=(side, side), mode=mode, align_corners=False,
                                              antialias=x.shape[-1] > side)
        return out.clamp(0, 1) if mode == "bicubic" else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.resize(x))

    @property
    def input_size(self) -> int:
        return self.image_size

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fed {self.image_size}x{self.image_size} images"


def fed_at(classifier: Classifier, image_size: int) -> Classifier:
    """``classifier`` itself when it takes ``image_size`` images, else a :class:`ResizedInput`."""
    if classifier.config.input_size[-1] == image_size:
        return classifier
    return ResizedInput(classifier, image_size)


def resnet(channels=(16, 32, 64), blocks=(2, 2, 2), num_classes: int = 10) -> nn.Sequential:
    """A CIFAR-style ResNet (3x3 stem, no max-pool) of timm ``BasicBlock`` stages.

    Named children ``stem, layer1..layerK, head`` so blocks can be split off by name.
    """
    stages, width = [], channels[0]
    for i, (out, n) in enumerate(zip(channels, blocks)):
        layers = []
        for j in range(n):
            stride = 2 if i > 0 and j == 0 else 1
            down = None
            if stride != 1 or width != out:
                down = nn.Sequential(nn.Conv2d(width, out, 1, stride, bias=False), nn.BatchNorm2d(out))
            layers.append(BasicBlock(width, out, stride=stride, downsample=down))
            width = out
        stages.append((f"layer{i + 1}", nn.Sequential(*layers)))
    return nn.Sequential(OrderedDict([
        ("stem", nn.Sequential(nn.Conv2d(3, channels[0], 3, 1, 1, bias=False),
                               nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True))),
        *stages,
        ("head", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))),
    ]))


def vgg(channels=(16, 32, 64), num_classes: int = 10) -> nn.Sequential:
    """A small VGG-style CNN (two conv-BN-ReLU per stage, max-pool): a different family from ResNet."""
    stages, width = [], 3
    for i, out in enumerate(channels):
        stages.append((f"stage{i + 1}", nn.Sequential(
            nn.Conv2d(width, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True),
            nn.Conv2d(out, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True),
            nn.MaxPool2d(2))))
        width = out
    return nn.Sequential(OrderedDict([
        *stages,
        ("head", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))),
    ]))


def vit(img_size: int = 32, patch_size: int = 4, embed_dim: int = 96, depth: int = 4,
        num_heads: int = 3, num_classes: int = 10) -> VisionTransformer:
    """A small ViT (timm ``VisionTransformer``), class token, 8x8 patches of 4x4 pixels."""
    return VisionTransformer(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim,
                             depth=depth, num_heads=num_heads, mlp_ratio=2.0, num_classes=num_classes)


def mlp_mixer(img_size: int = 32, patch_size: int = 4, embed_dim: int = 96, num_blocks: int = 4,
              num_classes: int = 10) -> MlpMixer:
    """A small MLP-Mixer (timm ``MlpMixer``): no convolutions and no attention."""
    return MlpMixer(num_classes=num_classes, img_size=img_size, patch_size=patch_size,
                    num_blocks=num_blocks, embed_dim=embed_dim)
