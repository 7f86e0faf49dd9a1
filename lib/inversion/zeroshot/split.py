"""Split a classifier into shallow blocks f_1..f_K at named layers (zero-shot inversion, section 3).

A classifier is first read as a flat sequence of *units* (module paths such as ``stem``,
``layer2.0``, ``head.2``) whose composition is the network's forward pass; a cut list such as
``["stem", "layer1", "layer2"]`` then groups the units into blocks that end after the last unit
under each cut path. The first block keeps the :class:`~inversion.models.Classifier`'s input
normalization, so h_0 = x is an RGB image in [0, 1] and inverses work in pixel space.

Supported networks: ``nn.Sequential`` nets (the mini zoo's ``cnn`` family and ``judge-vgg``),
the CIFAR-10 ResNets, and in the paper profile timm ``ResNet`` (cuts ``layer1``..``layer4``, or
residual blocks such as ``layer2.0``), timm ``ByobNet`` (RepVGG: cuts ``stem``, ``stages.0``..
``stages.3``, or single blocks such as ``stages.2.5``) and timm ``VisionTransformer``.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn

Shape = tuple[int, ...]


class Normalize(nn.Module):
    """The classifier's input normalization, (x - mean) / std, as a module of block 1."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.detach().clone().view(1, -1, 1, 1))
        self.register_buffer("std", std.detach().clone().view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Lambda(nn.Module):
    """A parameter-free step of a forward pass that is not a module in the original network."""

    def __init__(self, fn, name: str):
        super().__init__()
        self.fn, self.name = fn, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


def _flatten(prefix: str, module: nn.Module) -> list[tuple[str, nn.Module]]:
    """Units of a module: nested ``nn.Sequential`` containers are opened, anything else is a leaf."""
    if isinstance(module, nn.Sequential):
        out = []
        for name, child in module.named_children():
            out += _flatten(f"{prefix}.{name}" if prefix else name, child)
        return out
    return [(prefix, module)]


def sequential_units(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The network as ``[(path, module), ...]`` whose composition equals ``net.forward`` (eval mode)."""
    from ..models.cifar_resnet import CifarResNet

    if isinstance(net, nn.Sequential):
        return _flatten("", net)
    if isinstance(net, CifarResNet):
        return [("conv1", net.conv1), ("bn1", net.bn1), ("relu", nn.ReLU()),
                *_flatten("layer1", net.layer1), *_flatten("layer2", net.layer2),
                *_flatten("layer3", net.layer3),
                ("pool", Lambda(lambda x: x.mean(dim=(2, 3)), "global average pool")),
                ("linear", net.linear)]
    try:
        from timm.models.byobnet import ByobNet
        from timm.models.resnet import ResNet
        from timm.models.vision_transformer import VisionTransformer
    except ImportError:  # pragma: no cover - timm is a dependency
        ByobNet = ResNet = VisionTransformer = ()
    if isinstance(net, ResNet):
        units = [("conv1", net.conv1), ("bn1", net.bn1), ("act1", net.act1), ("maxpool", net.maxpool)]
        for name in ("layer1", "layer2", "layer3", "layer4"):
            units += _flatten(name, getattr(net, name))
        return units + [("global_pool", net.global_pool), ("fc", net.fc)]
    if isinstance(net, ByobNet):   # RepVGG and timm's other "bring your own blocks" nets
        return [*_flatten("stem", net.stem), *_flatten("stages", net.stages), ("final_conv", net.final_conv),
                ("head", net.head)]   # forward_head(x) is head(x): global pool + fc
    if isinstance(net, VisionTransformer):
        return [("patch_embed", net.patch_embed),
                ("pos_embed", Lambda(lambda x: net.norm_pre(net.patch_drop(net._pos_embed(x))), "pos_embed")),
                *_flatten("blocks", net.blocks), ("norm", net.norm),
                ("head", Lambda(net.forward_head, "forward_head"))]
    raise TypeError(f"cannot split a {type(net).__name__}: supported are nn.Sequential, CifarResNet, "
                    f"timm ResNet, ByobNet (RepVGG) and VisionTransformer")


def _is_repvgg_block(module: nn.Module) -> bool:
    try:
        from timm.models.byobnet import RepVggBlock
    except ImportError:  # pragma: no cover - timm is a dependency
        return False
    return isinstance(module, RepVggBlock)


def _main_path_layers(module: nn.Module) -> int:
    """Weight layers (conv/linear) on the main path, shortcut projections not counted.

    A RepVGG block counts as one layer: its parallel 3x3, 1x1 and identity branches are one 3x3
    conv after re-parameterization (Ding et al. 2021), which is how RepVGG counts its depth."""
    count, inside = 0, []
    for name, m in module.named_modules():
        if any(name.startswith(prefix) for prefix in inside):
            continue
        if _is_repvgg_block(m):
            count += 1
            inside.append(f"{name}." if name else "")
        elif isinstance(m, (nn.Conv2d, nn.Linear)) and not any(
                part in ("downsample", "shortcut") for part in name.split(".")):
            count += 1
    return count


class BlockChain(nn.Module):
    """The first K blocks f_1..f_K of a classifier, frozen, exposing every activation h_0..h_K.

    ``blocks[k - 1]`` is f_k; ``names[k - 1]`` its cut path; ``shapes[k]`` the shape of h_k
    (without batch dimension, ``shapes[0]`` is the image); ``layers[k]`` the number of weight
    layers between the image and h_k.
    """

    def __init__(self, blocks: Sequence[nn.Module], names: Sequence[str], input_shape: Shape):
        super().__init__()
        if len(blocks) != len(names) or not blocks:
            raise ValueError("need one name per block and at least one block")
        self.blocks = nn.ModuleList(blocks)
        self.names = list(names)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        with torch.no_grad():   # shape probe, made where the blocks live (cpu, cuda or meta)
            hs = self.activations(torch.rand(2, *input_shape, device=self.device))
        self.shapes: list[Shape] = [tuple(h.shape[1:]) for h in hs]
        self.layers = [0]
        for block in self.blocks:
            self.layers.append(self.layers[-1] + _main_path_layers(block))

    def __len__(self) -> int:
        return len(self.blocks)

    @property
    def device(self) -> torch.device:
        """Where the blocks' parameters (or buffers) are; the CPU for a parameter-free chain."""
        tensor = next(iter(self.parameters()), None)
        if tensor is None:
            tensor = next(iter(self.buffers()), None)
        return tensor.device if tensor is not None else torch.device("cpu")

    def train(self, mode: bool = True) -> "BlockChain":
        return super().train(False)  # the forward model is frozen, BatchNorm always in eval mode

    def forward(self, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """f_{1..depth}(x) (default: all K blocks)."""
        for block in self.blocks[: len(self.blocks) if depth is None else depth]:
            x = block(x)
        return x

    def activations(self, x: torch.Tensor, depth: int | None = None) -> list[torch.Tensor]:
        """[h_0 = x, h_1, ..., h_depth]."""
        hs = [x]
        for block in self.blocks[: len(self.blocks) if depth is None else depth]:
            hs.append(block(hs[-1]))
        return hs


def split(model: nn.Module, cuts: Sequence[str]) -> BlockChain:
    """Split a :class:`~inversion.models.Classifier` after each named layer in ``cuts`` (in order).

    A cut ``"layer2"`` ends a block after the last unit at or under that path (``layer2.1``);
    ``"layer2.0"`` after the first residual block of stage 2. Units after the last cut are
    dropped: the chain is the first k layers of the network. Block 1 starts with the model's
    input normalization.
    """
    if not cuts:
        raise ValueError("give at least one cut")
    net = getattr(model, "net", model)
    units = sequential_units(net)
    paths = [p for p, _ in units]
    ends = []
    for cut in cuts:
        hits = [i for i, p in enumerate(paths) if p == cut or p.startswith(cut + ".")]
        if not hits:
            raise KeyError(f"no layer {cut!r} in {type(net).__name__}; units are {paths}")
        ends.append(hits[-1] + 1)
    if any(b <= a for a, b in zip(ends, ends[1:])):
        raise ValueError(f"cuts must be strictly increasing along the network: {list(cuts)} -> ends {ends}")
    blocks, start = [], 0
    for k, end in enumerate(ends):
        steps = OrderedDict()
        if k == 0 and hasattr(model, "mean") and hasattr(model, "std"):
            steps["normalize"] = Normalize(model.mean, model.std)
        for path, module in units[start:end]:
            steps[path.replace(".", "_")] = module
        blocks.append(nn.Sequential(steps))
        start = end
    input_shape = tuple(getattr(getattr(model, "config", None), "input_size", (3, 32, 32)))
    return BlockChain(blocks, list(cuts), input_shape)
