"""Evaluating inverses on real test images: PSNR, SSIM, judge agreement, per depth; speed vs optimization.

Used by notebooks 05 (classifiers) and 06 (GAN). Images in [0, 1]. The *judge* is an outside
classifier (``judge-vgg`` for Fashion-Scenes, another CIFAR ResNet for the photographs): its
agreement is the fraction of reconstructions it assigns to the class it assigns to the original.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..metrics import psnr, ssim
from .inverse import InverseChain
from .split import BlockChain
from .train import reconstruct


def _device_of(model) -> torch.device:
    tensor = next(iter(model.parameters()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


@torch.no_grad()
def predict_classes(model, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Class predictions of a classifier on [0, 1] images, in batches on the model's device (result on the CPU)."""
    device = _device_of(model)
    return torch.cat([model(images[i:i + batch].to(device)).argmax(1).cpu() for i in range(0, len(images), batch)])


@torch.no_grad()
def penultimate_features(model, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """The input of a classifier's last linear layer (its penultimate features), for FID-style distances."""
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    captured = []
    handle = last.register_forward_hook(lambda module, args, out: captured.append(args[0].flatten(1).cpu()))
    try:
        device = _device_of(model)
        for i in range(0, len(images), batch):
            model(images[i:i + batch].to(device))
    finally:
        handle.remove()
    return torch.cat(captured)


@torch.no_grad()
def confidence(model, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """The classifier's top softmax probability per image."""
    device = _device_of(model)
    return torch.cat([model(images[i:i + batch].to(device)).softmax(1).amax(1).cpu()
                      for i in range(0, len(images), batch)])


def quality(originals: torch.Tensor, reconstructions: torch.Tensor, judge=None,
            original_classes: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-image PSNR (dB), SSIM and, with a judge, agreement (1 if the judge's class is unchanged).

    ``original_classes``: the judge's classes of ``originals`` when already known (they are the same
    for every reconstruction of one set). Computed on the CPU, whatever devices the batches come from."""
    originals, reconstructions = originals.detach().cpu(), reconstructions.detach().cpu()
    out = {"psnr": psnr(reconstructions, originals), "ssim": ssim(reconstructions, originals)}
    if judge is not None:
        if original_classes is None:
            original_classes = predict_classes(judge, originals)
        out["judge_agreement"] = (predict_classes(judge, reconstructions) == original_classes.cpu()).float()
    return out


def constant_image_floor(images: torch.Tensor, judge=None) -> dict[str, float]:
    """Mean quality of answering every image with the set's own mean image.

    The best a constant output can score (an oracle no inverse sees): an inverse near this floor
    has recovered nothing of the images from its depth.
    """
    q = quality(images, images.mean(0, keepdim=True).expand_as(images).contiguous(), judge)
    return {name: float(v.mean()) for name, v in q.items()}


def evaluate_depths(chain: BlockChain, inverse: InverseChain, images: torch.Tensor, judge=None,
                    depths: Sequence[int] | None = None, device="cpu") -> tuple[list[dict], dict[int, torch.Tensor]]:
    """Reconstruct ``images`` from every depth with G_k(f_{1..k}(x)); returns (rows, reconstructions by depth).

    A row: depth, cut name, weight layers, mean PSNR / SSIM / judge agreement, inverse seconds per image.
    """
    depths = range(1, len(chain) + 1) if depths is None else depths
    rows, recs = [], {}
    classes = predict_classes(judge, images.detach().cpu()) if judge is not None else None   # once for every depth
    for k in depths:
        rec, seconds = reconstruct(chain, inverse, images, k, device=device)
        q = quality(images, rec, judge, classes)
        rows.append({"depth": k, "cut": chain.names[k - 1], "layers": chain.layers[k],
                     **{name: float(v.mean()) for name, v in q.items()}, "seconds_per_image": seconds})
        recs[k] = rec
    return rows, recs


def speedup_at_equal_quality(inverse_psnr: float, inverse_seconds: float,
                             trajectory: Sequence[tuple[int, float, float]]) -> dict:
    """Compare one feed-forward pass with an optimization trajectory [(step, seconds per image, PSNR), ...].

    Returns the optimization's first step (and its time) reaching the inverse's PSNR (None if never),
    the speed ratio at that point, and the ratio at the last step with both PSNRs. ``speedup`` is the
    ratio at equal PSNR, or, if the optimization never reaches the inverse's PSNR (the inverse is
    better at every step), the ratio against its last step.
    """
    reach = next(((s, t, p) for s, t, p in trajectory if p >= inverse_psnr), None)
    last = trajectory[-1]
    return {"speedup": (reach[1] if reach else last[1]) / inverse_seconds, "inverse_psnr": inverse_psnr,
            "inverse_seconds_per_image": inverse_seconds,
            "optimization_steps_to_match": reach[0] if reach else None,
            "speedup_at_equal_psnr": (reach[1] / inverse_seconds) if reach else None,
            "optimization_final_psnr": last[2], "optimization_final_seconds_per_image": last[1],
            "speedup_vs_final_optimization": last[1] / inverse_seconds}
