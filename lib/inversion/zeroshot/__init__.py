"""Zero-shot divide-and-conquer inversion (Dong et al., arXiv 2107.06304).

``split`` cuts a classifier into blocks f_1..f_K, ``inverse`` builds g_1..g_K from their
shapes, ``synthetic`` makes the (never real) training inputs, ``losses`` holds the block-wise,
input-space and cycle terms, ``train`` the progressive training and the baselines (plain decoder, end-to-end,
stage-wise), ``gan`` the SNGAN whose generator is inverted the same way.
"""
from .inverse import InverseChain, inverse_block
from .losses import ZeroShotObjective, block_wise_loss, cycle_loss, input_space_loss, zero_shot_loss
from .split import BlockChain, split
from .synthetic import KINDS, RealDataError, assert_synthetic, make_source
from .inverse import DecoderBank, PlainDecoder
from .train import InverseConfig, fit_inverse, invert_activations_by_optimization, profile_config, reconstruct, train_inverse

__all__ = ["InverseChain", "inverse_block", "ZeroShotObjective", "block_wise_loss", "cycle_loss",
           "input_space_loss", "zero_shot_loss", "BlockChain", "split", "KINDS", "RealDataError",
           "assert_synthetic", "make_source", "InverseConfig", "fit_inverse", "invert_activations_by_optimization",
           "reconstruct", "train_inverse", "profile_config", "DecoderBank", "PlainDecoder"]
