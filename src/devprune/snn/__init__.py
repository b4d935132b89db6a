"""Spiking substrate: multi-step neurons, surrogate gradients, encoders and time-folding layers.

Layout convention: every module here is *multi-step*; tensors are time-major ``[T, B, ...]``.
"""
