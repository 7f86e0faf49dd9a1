"""One switch for numerical precision and memory layout, shared by every loop of the study.

``precision="bf16"`` runs the forward pass under ``torch.autocast`` with bfloat16 (on CPUs with
AVX-512 BF16 and on GPUs this is often 1.5-2.6x faster; it is slower for some models, so each
loop measures before adopting it); ``"fp32"`` is plain float32. ``channels_last`` converts a
convolutional model's parameters and inputs to NHWC. Parameters, optimizer state and losses stay
float32 in both modes (autocast only changes the dtype of the operations inside it).
:func:`eager_attention` swaps timm's fused attention for its eager form (same math), which is
faster on this CPU.
:func:`allow_tf32` is the GPU's TensorFloat-32 switch for float32 matmuls (process-wide).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

PRECISIONS = ("fp32", "bf16")


def allow_tf32(enabled: bool = True) -> bool:
    """TensorFloat-32 for float32 matrix products on NVIDIA GPUs (Ampere and later), process-wide.

    ``torch.set_float32_matmul_precision("high")`` and ``torch.backends.cudnn.allow_tf32``: the
    products of float32 matmuls and convolutions are rounded to a 10-bit mantissa and accumulated in
    float32 (convolutions do this by default in PyTorch; matmuls, i.e. ViT and MLP layers, do not).
    Tensors stay float32, so it combines with either precision above. No effect on the CPU. Returns
    whether matmul TF32 was on before, to restore it. Adopt it where a loop was measured to keep its
    numbers (the study has not measured it on a GPU).
    """
    previous = torch.get_float32_matmul_precision() != "highest"
    torch.set_float32_matmul_precision("high" if enabled else "highest")
    if enabled:   # switching off restores float32 matmuls; convolutions keep PyTorch's default
        torch.backends.cudnn.allow_tf32 = True
    return previous


def check(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    return precision


def autocast(precision: str, device: str | torch.device = "cpu"):
    """The context a forward pass runs in: bf16 autocast, or nothing for fp32 (and on PyTorch's
    ``meta`` device, which has no autocast: the device-placement tests check shapes and devices there)."""
    if check(precision) == "fp32" or torch.device(device).type == "meta":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def to_memory_format(module_or_tensor, channels_last: bool):
    """``channels_last`` layout for a module's 4-d parameters or an (N, C, H, W) tensor; else unchanged."""
    if not channels_last:
        return module_or_tensor
    if isinstance(module_or_tensor, nn.Module):
        return module_or_tensor.to(memory_format=torch.channels_last)
    if module_or_tensor.dim() == 4:
        return module_or_tensor.contiguous(memory_format=torch.channels_last)
    return module_or_tensor


@contextlib.contextmanager
def channels_last_during(model: nn.Module, channels_last: bool):
    """NHWC layout for ``model``'s 4-d parameters inside the block, restored after it: a frozen model
    that other code shares keeps its layout. Nothing happens when off or already channels_last."""
    weights = [p for p in model.parameters() if p.dim() == 4]
    was = bool(weights) and weights[0].is_contiguous(memory_format=torch.channels_last) \
        and not weights[0].is_contiguous()
    if channels_last and not was:
        to_memory_format(model, True)
    try:
        yield model
    finally:
        if channels_last and not was:
            model.to(memory_format=torch.contiguous_format)


def cache_fields(fields: dict) -> dict:
    """A config's fields as they enter a cache key: the speed switches at their defaults (fp32,
    contiguous layout) are left out, so artefacts cached before a switch existed keep their keys."""
    out = dict(fields)
    if out.get("precision") == "fp32":
        del out["precision"]
    if out.get("channels_last") is False:
        del out["channels_last"]
    return out


def eager_attention(module: nn.Module) -> int:
    """Run every timm attention block of ``module`` in its eager form (``q @ k.T``, softmax, ``@ v``)
    instead of PyTorch's fused ``scaled_dot_product_attention``; returns how many blocks it switched.

    The same computation up to float rounding. On the CPU the fused kernel is the slower one at the
    study's shapes, by far under bf16 autocast: a forward + backward of the CIFAR-10 ViT at PII's
    batch of 80 takes 0.30 s fused and 0.11 s eager in bf16, 0.21 s and 0.22 s in fp32 on one thread
    (``scripts/benchmark.py --only pii``; on two threads eager was also 1.3x faster in fp32), so
    :func:`inversion.models.load` calls this for CPU models. GPUs keep the fused kernel.
    """
    blocks = [m for m in module.modules() if isinstance(getattr(m, "fused_attn", None), bool)]
    for m in blocks:
        m.fused_attn = False
    return len(blocks)
