"""Scoring reconstructions of Fashion-Scenes, CIFAR-10 or ImageNet images (notebooks 02-04).

For reconstructions ``r`` of originals ``x``: PSNR and SSIM against ``x``; *class agreement* --
the outside judge (a classifier that was not inverted) gives ``r`` the label it gives ``x``; the
*thumbnail error*, a colour-and-layout measure that needs no ground truth (RMS distance of the 4x4
mean-colour thumbnails of ``r`` and ``x``); and, for Fashion-Scenes, whose ground-truth factors
are known, the factor errors of the probe's reading of ``r`` against ``x``'s ground truth
(:mod:`inversion.feedforward.probe`). Each error also comes as a fraction of the same-class chance
reference: the error of a random other image of the same class.
"""
from __future__ import annotations

import time
from typing import Callable

import pandas as pd
import torch

from ..data.fashion_scenes import FACTORS, Scenes
from ..metrics import psnr, ssim
from ..models.training import predict_logits
from .probe import FactorProbe, chance_errors, factor_errors, same_class_partner


THUMBNAIL = 4   # side of the mean-colour thumbnails of the colour/layout measure


def thumbnail_error(a: torch.Tensor, b: torch.Tensor, size: int = THUMBNAIL) -> torch.Tensor:
    """Per image, the RMS distance of the ``size`` x ``size`` mean-colour thumbnails of ``a`` and ``b``
    (images in [0, 1]): where the colours sit in the image, blind to texture and detail."""
    ta = torch.nn.functional.adaptive_avg_pool2d(a.float(), size)
    tb = torch.nn.functional.adaptive_avg_pool2d(b.float(), size)
    return (ta - tb).pow(2).mean((1, 2, 3)).sqrt()


def judge_labels(judge: torch.nn.Module, data, device: str | torch.device = "cpu") -> torch.Tensor:
    """The judge's top-1 labels of the original images of ``data``."""
    return predict_logits(judge, data.float_images(), device=device).argmax(1)


def per_image_scores(recon: torch.Tensor, data, probe: FactorProbe | None, judge: torch.nn.Module,
                     device: str | torch.device = "cpu", original_labels: torch.Tensor | None = None) -> pd.DataFrame:
    """One row per image: psnr, ssim, judge_agrees, thumbnail_error and, with a ``probe`` (``data``
    then has ground-truth factors), one error column per factor.

    ``judge_agrees``: the judge's top-1 label of the reconstruction equals its top-1 label of the
    original (any number of classes); ``original_labels``: those labels of the originals, when
    already computed with :func:`judge_labels`.
    """
    originals = data.float_images()
    if recon.shape != originals.shape:
        raise ValueError(f"reconstructions {tuple(recon.shape)} do not match the originals {tuple(originals.shape)}")
    recon = recon.float().clamp(0, 1)
    if original_labels is None:
        original_labels = predict_logits(judge, originals, device=device).argmax(1)
    agree = predict_logits(judge, recon, device=device).argmax(1) == original_labels
    errors = factor_errors(probe.read(recon), data.factors()) if probe is not None else {}
    return pd.DataFrame({"psnr": psnr(recon, originals).numpy(), "ssim": ssim(recon, originals).numpy(),
                         "judge_agrees": agree.float().numpy(),
                         "thumbnail_error": thumbnail_error(recon, originals).numpy(),
                         **{f"{k}_error": v.numpy() for k, v in errors.items()}})


def summarize(scores: pd.DataFrame, chance: dict[str, float] | None = None) -> dict[str, float]:
    """Means of the per-image scores; with ``chance``, also each error / its chance error
    (``<name>_vs_chance`` for every ``<name>_error`` column that has a chance value)."""
    out = scores.mean().to_dict()
    if chance:
        out.update({f"{k}_vs_chance": out[f"{k}_error"] / chance[k] for k in chance if f"{k}_error" in out})
    return out


def chance_reference(data, seed: int = 0) -> dict[str, float]:
    """Mean errors of a random other image of the same class: the thumbnail error and, where ``data``
    has ground-truth factors, every factor error.

    An image that is the only one of its class in ``data`` (a few of 1000 ImageNet classes in a
    small evaluation set) has no partner and is left out of the thumbnail mean (NaN if no image
    has one); with every class present twice or more, all images count.
    """
    partner = same_class_partner(data.labels, seed)
    error = thumbnail_error(data.float_images(partner), data.float_images())
    paired = partner != torch.arange(len(partner))
    out = {"thumbnail": (error if bool(paired.all()) else error[paired]).mean().item()}
    if hasattr(data, "factors"):
        out.update({k: v.mean().item() for k, v in chance_errors(data, seed).items()})
    return out


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


def seed_rule(a: list[float], b: list[float], higher_is_better: bool = True) -> dict:
    """Compare a metric of two models, each measured over several seeds of the generator's training.

    A difference counts only when ``|mean(a) - mean(b)|`` exceeds twice the larger of the two seed
    standard deviations (sample std, ddof 1); otherwise the verdict is ``"no difference"``. Returns
    the means, the stds, the difference ``mean(a) - mean(b)``, the threshold and the verdict
    (``"a better"``, ``"b better"`` or ``"no difference"``).
    """
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    if len(ta) < 2 or len(tb) < 2:
        raise ValueError(f"the seed rule needs at least 2 seeds per model, got {len(ta)} and {len(tb)}")
    std_a, std_b = ta.std().item(), tb.std().item()
    difference = ta.mean().item() - tb.mean().item()
    threshold = 2 * max(std_a, std_b)
    verdict = "no difference"
    if abs(difference) > threshold:
        verdict = "a better" if (difference > 0) == higher_is_better else "b better"
    return {"mean_a": ta.mean().item(), "mean_b": tb.mean().item(), "std_a": std_a, "std_b": std_b,
            "difference": difference, "threshold": threshold, "verdict": verdict}


HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "judge_agrees": True, "thumbnail_error": False,
                    "thumbnail_vs_chance": False}


def seed_comparisons(per_seed: pd.DataFrame, reference: str, others: list[str], metrics: list[str],
                     by: str = "model") -> pd.DataFrame:
    """:func:`seed_rule` of every model of ``others`` against ``reference`` on every metric.

    ``per_seed`` has one row per (model, generator seed) with a ``by`` column naming the model.
    One row per (model, metric): the means, seed stds, difference, threshold and a verdict for the
    model against the reference: ``"better"``, ``"worse"`` or ``"no difference"``.
    """
    words = {"a better": "better", "b better": "worse", "no difference": "no difference"}
    rows = []
    for other in others:
        for metric in metrics:
            r = seed_rule(per_seed.loc[per_seed[by] == other, metric].tolist(),
                          per_seed.loc[per_seed[by] == reference, metric].tolist(), HIGHER_IS_BETTER[metric])
            rows.append({"model": other, "versus": reference, "metric": metric, "model_mean": r["mean_a"],
                         "versus_mean": r["mean_b"], "model_std": r["std_a"], "versus_std": r["std_b"],
                         "difference": r["difference"], "threshold": r["threshold"], "verdict": words[r["verdict"]]})
    return pd.DataFrame(rows).set_index(["model", "metric"])


def describe_comparisons(comparisons: pd.DataFrame, prefix: str = "") -> str:
    """One line per row of :func:`seed_comparisons`: both means +- seed std, the difference, the
    seed-rule threshold and the verdict, each line starting with ``prefix``."""
    return "\n".join(
        f"{prefix}{name} vs {r['versus']}, {metric}: {r['model_mean']:.4f} +- {r['model_std']:.4f} vs "
        f"{r['versus_mean']:.4f} +- {r['versus_std']:.4f} (difference {r['difference']:+.4f}, "
        f"seed rule {r['threshold']:.4f}) -> {r['verdict']}"
        for (name, metric), r in comparisons.iterrows())
