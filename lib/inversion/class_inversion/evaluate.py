"""Judging inverted images: cross-model top-k accuracy and an Inception-Score-style score.

PII (Ghiasi et al. 2022, Table 1) classifies the inversions of one model with other pretrained
models and reports the Inception Score (Salimans et al. 2016). At 32 px there is no Inception
network, so the score uses an independent judge classifier f:

    IS_f(X) = exp( E_{x in X} KL( p_f(y | x) || p_f(y) ) ),   p_f(y) = E_{x in X} p_f(y | x)

It lies in [1, number of classes]: high when every image is classified confidently (sharp
p(y|x)) and the classes are diverse (flat p(y)). With one image per class of 10, the maximum is 10.
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd
import torch
import torch.nn as nn


@torch.no_grad()
def logits_of(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits of ``images`` (in [0, 1]) on the model's device, returned on the CPU."""
    device = next(iter(list(model.parameters()) + list(model.buffers()))).device
    out = [model(images[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out)


def topk_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int = 1) -> float:
    """Fraction of rows whose target is among the ``k`` largest logits."""
    k = min(k, logits.shape[1])
    hit = (logits.topk(k, dim=1).indices == targets.view(-1, 1).to(logits.device)).any(dim=1)
    return hit.float().mean().item()


def inception_style_score(logits: torch.Tensor) -> float:
    """``exp(E_x KL(p(y|x) || p(y)))`` from a judge's logits (see the module docstring)."""
    log_p = logits.float().log_softmax(dim=1)
    log_marginal = log_p.exp().mean(dim=0).clamp_min(1e-12).log()
    kl = (log_p.exp() * (log_p - log_marginal)).sum(dim=1)
    return kl.mean().exp().item()


def judge(images: torch.Tensor, targets: torch.Tensor, judges: Mapping[str, nn.Module]) -> pd.DataFrame:
    """One row per judge: top-1, top-5 accuracy on the targets and the IS-style score."""
    rows = {}
    for name, model in judges.items():
        logits = logits_of(model, images)
        rows[name] = {"top1": topk_accuracy(logits, targets, 1), "top5": topk_accuracy(logits, targets, 5),
                      "is_score": inception_style_score(logits)}
    return pd.DataFrame.from_dict(rows, orient="index")


def cross_model_matrix(inversions: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                       judges: Mapping[str, nn.Module], metric: str = "top1") -> pd.DataFrame:
    """Rows: inverted model; columns: judging model; values: ``metric`` of :func:`judge`."""
    frame = pd.DataFrame({inv: judge(images, targets, judges)[metric] for inv, (images, targets) in inversions.items()}).T
    frame.index.name, frame.columns.name = "inverted", "judge"
    return frame


def mean_over_other_judges(matrix: pd.DataFrame) -> pd.Series:
    """Row means of a cross-model matrix, leaving out the model judging its own inversions."""
    return pd.Series({inv: matrix.loc[inv].drop(labels=[inv], errors="ignore").mean() for inv in matrix.index})
