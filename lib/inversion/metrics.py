"""Image-quality metrics shared by the notebooks: PSNR and SSIM per image (torchmetrics)."""
from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def _check(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"expected two (N, C, H, W) batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image pair, images in [0, 1]; returns shape (N,)."""
    _check(x, y)
    return peak_signal_noise_ratio(x.float().clamp(0, 1), y.float().clamp(0, 1), data_range=1.0,
                                   reduction="none", dim=(1, 2, 3))


def ssim(x: torch.Tensor, y: torch.Tensor, kernel_size: int = 7) -> torch.Tensor:
    """SSIM of each image pair (Gaussian window, 7x7 at 32x32), images in [0, 1]; returns (N,)."""
    _check(x, y)
    return structural_similarity_index_measure(x.float().clamp(0, 1), y.float().clamp(0, 1), data_range=1.0,
                                               kernel_size=kernel_size, reduction="none")
