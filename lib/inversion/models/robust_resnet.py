"""Small adversarially trained CIFAR-10 ResNets without BatchNorm (L-inf, eps 2/255).

Real robust models nobody in this study trained: ``resnet2b`` and ``resnet4b`` of the
alpha-beta-CROWN verification benchmarks (Wang et al. 2021, "Beta-CROWN"; BSD-3-Clause),
published in github.com/Verified-Intelligence/alpha-beta-CROWN. Architecture (written here from
the published facts): a stride-2 3x3 stem with bias and ReLU, stages of BasicBlocks
``relu(conv2(relu(conv1(x))) + shortcut(x))`` (3x3 convs with bias, no BatchNorm; a 1x1 conv
shortcut when the shape changes), flatten in (C, H, W) order, ``linear1`` -> ReLU -> ``linear2``.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..paths import data_dir, find_or_download, repo_root

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # the normalization these checkpoints were trained with
CIFAR10_STD = (0.2471, 0.2435, 0.2616)
# name -> (stem width, stages as (planes, blocks, first stride), sha256 of the published file)
ARCHITECTURES = {
    "resnet2b": (8, ((16, 2, 2),), "ef824b47"),
    "resnet4b": (16, ((32, 2, 2), (32, 2, 2)), "6158f966"),
}
URL = ("https://github.com/Verified-Intelligence/alpha-beta-CROWN/raw/main/complete_verifier/"
       "models/cifar10_resnet/{}.pth")
ATTACK = "L-inf PGD, eps 2/255 (the published benchmark's threat model)"


class BasicBlock(nn.Module):
    """``relu(conv2(relu(conv1(x))) + shortcut(x))``: 3x3 convs with bias, no normalization."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1)
        self.shortcut = (nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride))
                         if stride != 1 or inplanes != planes else nn.Sequential())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))


class RobustResNet(nn.Module):
    """``resnet2b`` / ``resnet4b``: input 32x32 (normalized), output 10 logits."""

    def __init__(self, name: str = "resnet4b", num_classes: int = 10):
        super().__init__()
        if name not in ARCHITECTURES:
            raise ValueError(f"robust ResNets are {sorted(ARCHITECTURES)}, not {name!r}")
        stem, stages, _ = ARCHITECTURES[name]
        self.conv1 = nn.Conv2d(3, stem, 3, 2, 1)
        width, size = stem, 16
        for i, (planes, blocks, stride) in enumerate(stages):
            layers = [BasicBlock(width, planes, stride)] + [BasicBlock(planes, planes) for _ in range(blocks - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
            width, size = planes, size // stride
        self.n_stages = len(stages)
        self.linear1 = nn.Linear(width * size * size, 100)
        self.linear2 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.linear2(F.relu(self.linear1(x.flatten(1))))


def candidate_dirs() -> list[Path]:
    """``CIFAR10_ROBUST_DIR``, then ``../shared/assets/cifar10-robust-resnets``, then data/."""
    dirs = [Path(os.environ["CIFAR10_ROBUST_DIR"])] if os.environ.get("CIFAR10_ROBUST_DIR") else []
    return dirs + [repo_root().parent / "shared" / "assets" / "cifar10-robust-resnets",
                   data_dir() / "cifar10-robust-resnets"]


def checkpoint_path(name: str, download: bool = True) -> Path:
    """The verified local checkpoint file; downloaded (sha256-prefix checked) when not found."""
    file = f"{name}.pth"
    return find_or_download(file, candidate_dirs(), URL.format(name), ARCHITECTURES[name][2], "CIFAR10_ROBUST_DIR",
                            download)


def pretrained(name: str) -> RobustResNet:
    """A robust ResNet with its published weights (eval mode; expects normalized input)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"robust ResNets are {sorted(ARCHITECTURES)}, not {name!r}")
    checkpoint = torch.load(checkpoint_path(name), map_location="cpu", weights_only=True)
    model = RobustResNet(name)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def published_accuracy(name: str) -> dict[str, float]:
    """Clean and robust test accuracy stored in the checkpoint by its authors (in [0, 1])."""
    checkpoint = torch.load(checkpoint_path(name), map_location="cpu", weights_only=True)
    scale = 100.0 if checkpoint["test_acc"] > 1 else 1.0
    return {"test_accuracy": float(checkpoint["test_acc"]) / scale,
            "robust_accuracy": float(checkpoint["test_robust_acc"]) / scale}
