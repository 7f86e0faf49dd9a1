"""GPU kernels (Triton) for the two places where inversion spends GPU time badly, each with a
pure-torch reference of the same function and one dispatch (``backend="auto"``: the kernel on CUDA
when Triton imports, the reference elsewhere; :mod:`.backend`).

* :func:`render_shapes` and :func:`render_discs` (:mod:`.dead_leaves`) - dead leaves and random
  shapes for zero-shot inversion's synthesized data (Dong et al. 2021): K occluding discs,
  ellipses, rectangles or triangles per image in painter's order, flat or shaded, over a colour or
  an image; one program per pixel tile, no (N, K, H, W) mask.
* :func:`pii_augment` (:mod:`.pii_augment`) - Plug-In Inversion's per-step jitter -> ensemble of B
  copies -> ColorShift (Ghiasi et al. 2022, section 3) as one fused forward kernel and one
  backward kernel in an autograd ``Function``; :func:`draw_pii_parameters` draws its random
  parameters exactly as the ``class_inversion`` transforms do.

``scripts/benchmark_kernels.py`` times kernel, reference and ``torch.compile(reference)`` at the
papers' shapes.
"""
from .backend import BACKENDS, interpreting, resolve, triton_available
from .dead_leaves import SHAPES, render_discs, render_discs_reference, render_shapes, render_shapes_reference
from .pii_augment import (PIIAugmentFunction, draw_pii_parameters, pii_augment, pii_augment_random,
                          pii_augment_reference)

__all__ = ["BACKENDS", "interpreting", "resolve", "triton_available",
           "SHAPES", "render_discs", "render_discs_reference", "render_shapes", "render_shapes_reference",
           "PIIAugmentFunction", "draw_pii_parameters", "pii_augment", "pii_augment_random",
           "pii_augment_reference"]
