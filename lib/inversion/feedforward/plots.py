"""Figures of notebooks 02-04: labelled rows of images (no per-grid rescaling) and variance maps."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ..report import image_grid


def image_rows(ax, rows: dict[str, torch.Tensor], title: str | None = None, fontsize: int = 8):
    """Draw ``rows`` (label -> images (n, 3, S, S) in [0, 1], same n) as one grid, one row per label."""
    n = {len(v) for v in rows.values()}
    if len(n) != 1:
        raise ValueError(f"every row needs the same number of images, got {sorted(n)}")
    n = n.pop()
    images = torch.cat([v.detach().float().cpu() for v in rows.values()])
    ax.imshow(image_grid(images, nrow=n, padding=1), interpolation="nearest")
    side = images.shape[-1] + 1
    ax.set_yticks([side * (i + 0.5) for i in range(len(rows))], list(rows), fontsize=fontsize)
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=fontsize + 1)
    return ax


def rows_figure(panels: dict[str, dict[str, torch.Tensor]], width: float = 9.0):
    """One panel (title -> rows) per axis, stacked vertically; returns the figure."""
    heights = [len(rows) for rows in panels.values()]
    n_cols = max(len(next(iter(rows.values()))) for rows in panels.values())
    side = (width - 1.8) / n_cols  # inches per image; 1.8 in for the row labels
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, side * sum(heights) + 0.35 * len(panels)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (title, rows) in zip(axes[:, 0], panels.items()):
        image_rows(ax, rows, title)
    fig.tight_layout()
    return fig


def variance_maps(maps: dict[str, torch.Tensor], vmax: float | None = None, title: str | None = None):
    """Pixel-variance heat maps (label -> (S, S)) on one shared colour scale; returns the figure."""
    vmax = vmax if vmax is not None else max(m.max().item() for m in maps.values())
    fig, axes = plt.subplots(1, len(maps), figsize=(2.6 * len(maps) + 0.8, 2.6), squeeze=False)
    for ax, (label, m) in zip(axes[0], maps.items()):
        im = ax.imshow(m.numpy(), cmap="magma", vmin=0, vmax=vmax)
        ax.set_title(label, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.colorbar(im, ax=list(axes[0]), fraction=0.046, pad=0.04, label="pixel variance across noises")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
