"""Feature visualization with PII's augmentations (Ghiasi et al. 2022b, "What do Vision
Transformers Learn? A Visual Exploration", section 3): maximize one unit with the same loop.

Units: a channel of a convolutional layer's output (averaged over space), or a feature of a ViT
feed-forward layer after its GELU (``blocks.<i>.mlp.act``), averaged over the patch tokens (the
class token is left out). Many units are visualized at once, one image per unit in one batch.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .loop import InversionResult, input_size, optimize
from .methods import PIIConfig, resolve_stage_input
from .objectives import UnitActivation


def vit_ffn_layer(model: nn.Module, block: int) -> str:
    """The module name of a timm ViT's feed-forward activation (post-GELU) in ``block``."""
    net = getattr(model, "net", model)
    if not hasattr(net, "blocks"):
        raise ValueError(f"{type(net).__name__} has no transformer blocks")
    if not 0 <= block < len(net.blocks):
        raise ValueError(f"block must be in [0, {len(net.blocks)}), not {block}")
    prefix = "net." if hasattr(model, "net") else ""
    return f"{prefix}blocks.{block}.mlp.act"


def visualize_units(model: nn.Module, layer: str, units: Sequence[int] | torch.Tensor,
                    config: PIIConfig | None = None, *, skip_tokens: int | None = None, seed: int = 0,
                    device: str | torch.device | None = None, progress: bool = True) -> InversionResult:
    """One image per unit of ``layer`` (a module name of ``model``) maximizing its mean activation.

    ``config`` supplies PII's transforms, zoom schedule and optimizer (default: the paper's).
    ``skip_tokens``: leading tokens left out of the token average (default: the network's
    ``num_prefix_tokens``, i.e. the class token of a ViT; 0 for convolutional layers).
    """
    config = config if config is not None else PIIConfig()
    try:
        module = model.get_submodule(layer)
    except AttributeError as error:
        names = [n for n, _ in model.named_modules()][:40]
        raise ValueError(f"model has no module {layer!r}; some names: {names}") from error
    if skip_tokens is None:
        skip_tokens = int(getattr(getattr(model, "net", model), "num_prefix_tokens", 0))
    size = input_size(model)
    stage_input = resolve_stage_input(model, config)
    transforms = (lambda seen: config.transforms(size, seen)) if stage_input == "stage" else config.transforms(size)
    return optimize(model, torch.as_tensor(units, dtype=torch.long), [(1.0, UnitActivation(module, skip_tokens))],
                    transforms, config.stage_list(size), lr=config.lr, betas=config.betas,
                    border=config.border, seed=seed, device=device, stage_input=stage_input,
                    precision=config.precision, channels_last=config.channels_last, progress=progress,
                    desc=f"units {layer}")


@torch.no_grad()
def unit_activations(model: nn.Module, layer: str, images: torch.Tensor, skip_tokens: int | None = None) -> torch.Tensor:
    """(N, units) mean activations of every unit of ``layer`` on ``images`` (to check a visualization)."""
    module = model.get_submodule(layer)
    if skip_tokens is None:
        skip_tokens = int(getattr(getattr(model, "net", model), "num_prefix_tokens", 0))
    captured = {}
    hook = module.register_forward_hook(lambda m, i, o: captured.__setitem__("out", o))
    try:
        model(images)
    finally:
        hook.remove()
    return UnitActivation.unit_means(captured["out"], skip_tokens)
