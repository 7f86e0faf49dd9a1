"""Writing a notebook's results: figures (PNG + PDF), tables (CSV) and ``metrics.json``.

Every notebook makes one :class:`Report` and writes everything through it, so all results of
a profile land in ``figures/<profile>/<notebook>/`` and the batch runner can summarize them.
:meth:`Report.targets` writes the table of the study's targets and whether this run met them.
Figure files carry no creation dates, so regenerating an unchanged figure changes no bytes
of its PNG.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .paths import figures_dir

PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}
TARGET_COLUMNS = ("target", "measured", "met")


def _plain(value):
    """Make numpy/torch scalars and arrays JSON-friendly; round floats to 6 significant digits."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _plain(value.tolist())
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if not math.isfinite(value) or value == 0 else float(f"{value:.6g}")
    if isinstance(value, np.integer):
        return int(value)
    return value


class Report:
    """The output folder of one notebook in one profile."""

    def __init__(self, notebook: str, profile: str):
        self.notebook, self.profile = notebook, profile
        self.dir = figures_dir(profile) / notebook
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "metrics.json"
        self._metrics: dict = {"notebook": notebook, "profile": profile, "headline": {}}

    def figure(self, fig, name: str, dpi: int = 130) -> Path:
        """Save a matplotlib figure as ``name.png`` and ``name.pdf``; returns the PNG path."""
        png = self.dir / f"{name}.png"
        fig.savefig(png, dpi=dpi, bbox_inches="tight", metadata=PNG_METADATA)
        fig.savefig(self.dir / f"{name}.pdf", bbox_inches="tight", metadata=PDF_METADATA)
        return png

    def table(self, frame, name: str, float_format: str = "%.4g") -> Path:
        """Save a pandas DataFrame as ``name.csv``."""
        path = self.dir / f"{name}.csv"
        frame.to_csv(path, float_format=float_format)
        return path

    def targets(self, rows: Iterable, name: str = "table_targets"):
        """The notebook's targets table: what the study aims for, what this run measured, met or not.

        ``rows`` holds one entry per target, either a dict with the keys ``"target"`` (text),
        ``"measured"`` (text or number) and ``"met"`` (bool), plus any further columns, or a
        ``(target, measured, met)`` tuple. Writes ``name.csv`` through :meth:`table` (index
        ``target``; the runner copies ``table_targets.csv`` into ``SUMMARY.md``) and returns the
        DataFrame, so a notebook cell can end with it to display it.
        """
        records = []
        for row in rows:
            row = dict(row) if isinstance(row, Mapping) else dict(zip(TARGET_COLUMNS, row, strict=True))
            missing = [k for k in TARGET_COLUMNS if k not in row]
            if missing:
                raise ValueError(f"target row {row} lacks {missing}")
            if row["met"] is None or (isinstance(row["met"], float) and math.isnan(row["met"])):
                raise ValueError(f"target row {row['target']!r}: met must be True or False")
            row["met"] = bool(row["met"])
            records.append(row)
        extra = [k for r in records for k in r if k not in TARGET_COLUMNS]
        columns = list(TARGET_COLUMNS) + list(dict.fromkeys(extra))
        frame = pd.DataFrame(records, columns=columns).set_index("target")
        self.table(frame, name)
        return frame

    def metrics(self, headline: dict | None = None, **metrics) -> dict:
        """Merge metrics into ``metrics.json`` (rewritten each call). ``headline`` goes to SUMMARY.md."""
        if headline:
            self._metrics["headline"].update(_plain(headline))
        self._metrics.update(_plain(metrics))
        self.path.write_text(json.dumps(self._metrics, indent=2, sort_keys=False) + "\n")
        return self._metrics


def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """An (H, W, 3) array of images in [0, 1], laid out with torchvision; no per-grid rescaling."""
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=padding,
                     pad_value=pad_value, normalize=False)
    return grid.permute(1, 2, 0).numpy()


def show_grid(ax, images: torch.Tensor, nrow: int = 8, title: str | None = None,
              row_labels: Sequence[str] | None = None, padding: int = 1, **kwargs):
    """Draw an image grid on a matplotlib axis, without axes ticks; ``row_labels`` name the rows."""
    ax.imshow(image_grid(images, nrow=nrow, padding=padding, **kwargs), interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    if row_labels is not None:
        step = images.shape[-2] + padding   # grid rows are image height + padding apart
        ax.set_yticks([padding + step * i + (images.shape[-2] - 1) / 2 for i in range(len(row_labels))])
        ax.set_yticklabels(row_labels, fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return ax
