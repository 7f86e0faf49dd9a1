"""Class inversion: Plug-In Inversion, DeepDream, DeepInversion and feature visualization.

One loop (:func:`optimize`) serves every method; a method is a config (objective terms, random
transforms, zoom schedule). Reproduces Ghiasi et al., "Plug-In Inversion" (ICML 2022), with the
DeepDream and DeepInversion (Yin et al., CVPR 2020) baselines.

    from inversion.class_inversion import pii, PIIConfig, deep_inversion
    result = pii(model, range(10), PIIConfig(steps_per_stage=30, copies=8), seed=0)
    images = deep_inversion(model, range(10), steps=200, seed=0)   # (10, 3, 32, 32) in [0, 1]
"""
from .augmentations import ColorShift, Ensemble, Flip, Jitter, default_jitter, grow, resize, zoom_stages
from .evaluate import cross_model_matrix, inception_style_score, judge, mean_over_other_judges, topk_accuracy
from .feature_vis import unit_activations, visualize_units, vit_ffn_layer
from .loop import InversionResult, Stage, accepts_size, optimize
from .methods import (METHODS, DeepDreamConfig, DeepInversionConfig, PIIConfig, deep_dream, deep_inversion,
                      legacy_mode, resolve_stage_input,
                      invert, pii, with_overrides, with_speed)
from .objectives import (BatchNormStatistics, ClassCrossEntropy, L2Prior, Step, Term, TotalVariation,
                         UnitActivation)

__all__ = [
    "ColorShift", "Ensemble", "Flip", "Jitter", "default_jitter", "grow", "resize", "zoom_stages",
    "cross_model_matrix", "inception_style_score", "judge", "mean_over_other_judges", "topk_accuracy",
    "unit_activations", "visualize_units", "vit_ffn_layer",
    "InversionResult", "Stage", "accepts_size", "optimize",
    "METHODS", "DeepDreamConfig", "DeepInversionConfig", "PIIConfig", "deep_dream", "deep_inversion",
    "invert", "legacy_mode", "pii", "resolve_stage_input", "with_overrides", "with_speed",
    "BatchNormStatistics", "ClassCrossEntropy", "L2Prior", "Step", "Term", "TotalVariation", "UnitActivation",
]
