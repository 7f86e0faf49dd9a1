"""The CIFAR-10 ResNets of He et al. 2016 (section 4.2), for the real pretrained weights.

Architecture: 3x3 conv 3->16 + BN + ReLU, three stages of n BasicBlocks (16, 32, 64 channels,
stride 2 at the first block of stages 2 and 3), global average pooling, linear 64->10, with
the parameter-free "option A" shortcut (subsample, zero-pad channels). Depth = 6n + 2.
Weights: the public checkpoints of Y. Idelbayev (BSD-2-Clause).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..paths import data_dir, find_or_download

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_MEAN = (0.485, 0.456, 0.406)   # the normalization these checkpoints were trained with
CIFAR10_STD = (0.229, 0.224, 0.225)
CHECKPOINTS = {  # depth -> file name; the 8 hex digits start the file's sha256
    20: "resnet20-12fca82f.th", 32: "resnet32-d509ac18.th",
    44: "resnet44-014dd654.th", 56: "resnet56-4bfd9763.th",
}
URL = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/{}"


class ShortcutA(nn.Module):
    """Option-A shortcut: take every second pixel and zero-pad the channel dimension."""

    def __init__(self, planes: int):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = ShortcutA(planes) if stride != 1 or inplanes != planes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int = 20, num_classes: int = 10):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, not {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        planes, layers = 16, []
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = [BasicBlock(planes, width, stride)] + [BasicBlock(width, width) for _ in range(n - 1)]
            layers.append(nn.Sequential(*blocks))
            planes = width
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.forward_features(x).mean(dim=(2, 3)))


def candidate_dirs() -> list[Path]:
    """Where checkpoint files are looked for: ``CIFAR10_RESNETS_DIR``, ``../shared/assets``, data/."""
    from ..paths import repo_root

    dirs = [Path(os.environ["CIFAR10_RESNETS_DIR"])] if os.environ.get("CIFAR10_RESNETS_DIR") else []
    return dirs + [repo_root().parent / "shared" / "assets" / "cifar10-resnets",
                   data_dir() / "cifar10-resnets"]


def checkpoint_path(depth: int, download: bool = True) -> Path:
    """The verified local file of a checkpoint; downloaded (with hash check) when not found."""
    name = CHECKPOINTS[depth]
    prefix = name.rsplit("-", 1)[1].split(".")[0]
    return find_or_download(name, candidate_dirs(), URL.format(name), prefix, "CIFAR10_RESNETS_DIR", download)


def pretrained(depth: int) -> CifarResNet:
    """A CIFAR ResNet with the real pretrained weights (eval mode; expects normalized input)."""
    if depth not in CHECKPOINTS:
        raise ValueError(f"pretrained CIFAR ResNet depths are {sorted(CHECKPOINTS)}, not {depth}")
    state = torch.load(checkpoint_path(depth), map_location="cpu", weights_only=True)["state_dict"]
    model = CifarResNet(depth)
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    return model.eval()
