"""Scoring reconstructions of Fashion-Scenes images (notebooks 02-04).

For reconstructions ``r`` of originals ``x`` (whose ground-truth factors are known): PSNR and
SSIM against ``x``; *class agreement* -- the outside judge (a classifier that was not inverted)
gives ``r`` the label it gives ``x``; and the factor errors of the probe's reading of ``r``
against ``x``'s ground truth (:mod:`inversion.feedforward.probe`), also as a fraction of the
same-class chance reference.
"""
from __future__ import annotations

import time
from typing import Callable

import pandas as pd
import torch

from ..data.fashion_scenes import FACTORS, Scenes
from ..metrics import psnr, ssim
from ..models.training import predict
from .probe import FactorProbe, chance_errors, factor_errors


def per_image_scores(recon: torch.Tensor, scenes: Scenes, probe: FactorProbe, judge: torch.nn.Module,
                     device: str | torch.device = "cpu") -> pd.DataFrame:
    """One row per image: psnr, ssim, judge_agrees, and one error column per factor."""
    originals = scenes.float_images()
    if recon.shape != originals.shape:
        raise ValueError(f"reconstructions {tuple(recon.shape)} do not match the originals {tuple(originals.shape)}")
    recon = recon.float().clamp(0, 1)
    agree = predict(judge, recon, device=device).argmax(1) == predict(judge, originals, device=device).argmax(1)
    errors = factor_errors(probe.read(recon), scenes.factors())
    return pd.DataFrame({"psnr": psnr(recon, originals).numpy(), "ssim": ssim(recon, originals).numpy(),
                         "judge_agrees": agree.float().numpy(),
                         **{f"{k}_error": v.numpy() for k, v in errors.items()}})


def summarize(scores: pd.DataFrame, chance: dict[str, float] | None = None) -> dict[str, float]:
    """Means of the per-image scores; with ``chance``, also each factor error / its chance error."""
    out = scores.mean().to_dict()
    if chance:
        out.update({f"{k}_vs_chance": out[f"{k}_error"] / chance[k] for k in FACTORS if k in chance})
    return out


def chance_reference(scenes: Scenes, seed: int = 0) -> dict[str, float]:
    """Mean factor errors of a random other image of the same class."""
    return {k: v.mean().item() for k, v in chance_errors(scenes, seed).items()}


def probe_ceiling(probe: FactorProbe, scenes: Scenes) -> dict[str, float]:
    """Mean factor errors of the probe on real held-out images: the best any reconstruction can score."""
    return {k: v.mean().item() for k, v in factor_errors(probe.read(scenes.images), scenes.factors()).items()}


def seconds_per_image(fn: Callable[[], torch.Tensor], n: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` wall time of ``fn()`` (which processes ``n`` images), per image."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / n
