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


def _quadratic_features(logits: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    y = (logits.float() - mean) / std
    i, j = torch.triu_indices(y.shape[1], y.shape[1])
    return torch.cat([torch.ones(len(y), 1), y, y[:, i] * y[:, j]], 1)


def factor_readout(train_logits: torch.Tensor, train: Scenes, test_logits: torch.Tensor, test: Scenes,
                   ridge: float = 1e-2) -> pd.DataFrame:
    """How much of each nuisance factor the logits carry, read directly (no generator involved).

    A ridge regression from the logits (standardized, plus all pairwise products: a quadratic
    read-out) to the ground-truth factors, fitted on the training scenes and scored on the test
    scenes: R^2 per factor (0 = nothing beyond the mean, 1 = everything) and the factor error of
    the read-out relative to the same-class chance reference, in the units of :func:`factor_errors`.
    A generator that is trained to convergence could still do better than a quadratic read-out, but
    a factor with R^2 near 0 here is one the logits barely carry in any simple form.
    """
    from .probe import factor_errors

    mean, std = train_logits.float().mean(0), train_logits.float().std().clamp_min(1e-6)
    X, Xt = _quadratic_features(train_logits, mean, std), _quadratic_features(test_logits, mean, std)
    targets = {k: v.view(len(v), -1).float() for k, v in train.factors().items()}
    truth = {k: v.view(len(v), -1).float() for k, v in test.factors().items()}
    gram = X.T @ X + ridge * len(X) * torch.eye(X.shape[1])
    read, rows = {}, []
    for k in FACTORS:
        w = torch.linalg.solve(gram, X.T @ targets[k])
        pred = Xt @ w
        if k in ("foreground", "background"):
            pred = pred.clamp(0, 1)
        r2 = 1 - ((pred - truth[k]) ** 2).sum() / ((truth[k] - truth[k].mean(0)) ** 2).sum()
        read[k] = pred if pred.shape[1] > 1 else pred[:, 0]
        rows.append({"factor": k, "r2": r2.item()})
    errors = factor_errors(read, test.factors())
    chance = chance_reference(test)
    for row in rows:
        row["error"] = errors[row["factor"]].mean().item()
        row["error_vs_chance"] = row["error"] / chance[row["factor"]]
    return pd.DataFrame(rows).set_index("factor")
