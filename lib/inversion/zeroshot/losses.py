"""The zero-shot inversion objective (our reconstruction of the paper's eq. 1-3).

With h_0 = x, h_k = f_k(h_{k-1}) and G_k = g_1 o ... o g_k:

* block-wise:   L_block = sum_k || g_k(h_k) - h_{k-1} ||
* input-space:  L_input = sum_k || G_k(h_k) - x ||           (from every depth k)
* cycle:        L_cycle = sum_j || f_{1..j}(G_K(h_K)) - h_j ||  (through the frozen network)

Each norm is a *relative* mean squared error, ||a - b||^2 / ||b||^2 (per element means), so
activations of different scales at different depths weigh alike; every term is zero at a
perfect inverse.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


def relative_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean((p - t)^2) / mean(t^2), the target's scale detached; reduced in fp32 (also under bf16 autocast)."""
    prediction, target = prediction.float(), target.float()
    return (prediction - target).pow(2).mean() / target.detach().pow(2).mean().clamp_min(1e-8)


@dataclass(frozen=True)
class ZeroShotObjective:
    """Weights of the three terms."""

    block_weight: float = 1.0    # L_block, each inverse block against its own target
    input_weight: float = 1.0    # L_input, the image from every depth
    cycle_weight: float = 1.0    # L_cycle, re-encoded reconstruction against every activation


def block_wise_loss(inverse, hs: Sequence[torch.Tensor], depth: int | None = None,
                    first: int = 1) -> torch.Tensor:
    """sum_{k=first..depth} rel(g_k(h_k), h_{k-1})."""
    depth = len(hs) - 1 if depth is None else depth
    return sum(relative_mse(inverse.inverses[k - 1](hs[k]), hs[k - 1]) for k in range(first, depth + 1))


def input_space_loss(inverse, hs: Sequence[torch.Tensor], depth: int | None = None,
                     depths: Sequence[int] | None = None) -> torch.Tensor:
    """sum_k rel(G_k(h_k), x) over ``depths`` (default: every depth 1..depth)."""
    depth = len(hs) - 1 if depth is None else depth
    depths = range(1, depth + 1) if depths is None else depths
    return sum(relative_mse(inverse(hs[k], depth=k), hs[0]) for k in depths)


def cycle_loss(chain, inverse, hs: Sequence[torch.Tensor], depth: int | None = None,
               x_hat: torch.Tensor | None = None) -> torch.Tensor:
    """sum_{j=1..depth} rel(f_{1..j}(G_depth(h_depth)), h_j), through the frozen ``chain``."""
    depth = len(hs) - 1 if depth is None else depth
    x_hat = inverse(hs[depth], depth=depth) if x_hat is None else x_hat
    hs_hat = chain.activations(x_hat, depth)
    return sum(relative_mse(hs_hat[j], hs[j]) for j in range(1, depth + 1))


def zero_shot_loss(chain, inverse, hs: Sequence[torch.Tensor], depth: int,
                   objective: ZeroShotObjective = ZeroShotObjective()) -> tuple[torch.Tensor, dict]:
    """The weighted objective at depth k (progressive stage k): returns the total and its parts
    (detached 0-d tensors, so a training loop syncs with the device only when it logs them).

    Equals ``w_b * block_wise_loss + w_i * input_space_loss + w_c * cycle_loss`` but shares work:
    walking down from every h_k through g_k, ..., g_1 gives g_k(h_k) (block term) and G_k(h_k)
    (input term) in one pass, and G_depth(h_depth) is the cycle term's reconstruction.
    """
    block, inputs, x_hat = 0.0, 0.0, None
    for k in range(1, depth + 1):
        h = hs[k]
        for j in range(k, 0, -1):
            h = inverse.inverses[j - 1](h)
            if j == k:
                block = block + relative_mse(h, hs[k - 1])
            if not (objective.input_weight or objective.cycle_weight) and j == k:
                break                            # only the block term is needed
        if j == 1:
            inputs = inputs + relative_mse(h, hs[0])
            x_hat = h
    parts = {"block": block, "input": inputs}
    if objective.cycle_weight:
        parts["cycle"] = cycle_loss(chain, inverse, hs, depth, x_hat=x_hat)
    weights = {"block": objective.block_weight, "input": objective.input_weight, "cycle": objective.cycle_weight}
    total = sum(weights[k] * v for k, v in parts.items() if weights[k])
    return total, {k: v.detach() if torch.is_tensor(v) else torch.tensor(float(v)) for k, v in parts.items()}
