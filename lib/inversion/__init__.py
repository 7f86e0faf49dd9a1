"""A reproducible study of model inversion.

Modules: ``paths`` (where data, checkpoints and results live), ``data`` (the datasets),
``models`` (the registry of classifiers and their training), ``precision`` (fp32 / bf16),
``kernels`` (Triton kernels with torch references), the three algorithm packages
``class_inversion`` (Plug-In Inversion and its baselines), ``feedforward`` (logit inversion) and
``zeroshot`` (divide-and-conquer inversion), ``metrics`` (PSNR, SSIM), ``report`` (figures,
tables, ``metrics.json``) and ``reproduce`` (the batch runner of the notebooks).

Layers import downward only: ``data`` -> ``models`` -> the algorithm packages -> ``metrics`` /
``report`` -> notebooks; no algorithm package imports another.
"""

__version__ = "0.1.0"
