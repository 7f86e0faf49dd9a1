"""Feedforward inversion of classifier logits (Teterwak et al. 2021) and reusable GAN blocks."""
