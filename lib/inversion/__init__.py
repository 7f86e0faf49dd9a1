"""A reproducible study of model inversion.

Layers import downward only: ``data`` -> ``models`` -> algorithms (``pii``, ``feedforward``,
``zeroshot``) -> ``evaluation`` / ``figures`` -> notebooks (and ``reproduce``, the batch runner).
"""

__version__ = "0.1.0"
