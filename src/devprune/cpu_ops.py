"""Whole-layer elementwise steps through numpy views on the CPU (issue #17).

On synapse-sized tensors (the 16.8 M FC of the BrainCog CIFAR net) torch's CPU paths that
read or write bool tensors are several times slower than numpy's on the same memory:
multiplying a float tensor by a bool mask ~4x, a comparison into a bool tensor ~3x,
``nonzero`` ~4x. These helpers give the same results (same bits: numpy casts the bool to
0/1 and multiplies, as torch does) and fall back to torch off the CPU or for other dtypes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

_NUMPY_DTYPES = (torch.float32, torch.float64, torch.bool, torch.uint8, torch.int16)


def _numpy_ok(*tensors: torch.Tensor) -> bool:
    return all(t.device.type == "cpu" and t.dtype in _NUMPY_DTYPES and not t.requires_grad
               for t in tensors)


def mul_mask(x: torch.Tensor, mask: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``torch.mul(x, mask, out=out)`` (``out`` may be ``x``) for a bool ``mask``."""
    if _numpy_ok(x, mask, out) and out.is_contiguous():
        np.multiply(x.numpy(), mask.numpy(), out=out.numpy())
        torch.autograd.graph.increment_version(out)  # as torch's in-place write would
        return out
    return torch.mul(x, mask, out=out)


def compare(op: Callable, x: torch.Tensor, y: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``op(x, y, out=out)`` for ``op`` in torch.ge / torch.le / torch.lt / torch.gt."""
    if _numpy_ok(x, y, out) and out.is_contiguous():
        getattr(np, _NUMPY_NAMES[op])(x.numpy(), y.numpy(), out=out.numpy())
        torch.autograd.graph.increment_version(out)
        return out
    return op(x, y, out=out)


_NUMPY_NAMES = {torch.ge: "greater_equal", torch.le: "less_equal", torch.lt: "less",
                torch.gt: "greater"}


def flat_nonzero(mask: torch.Tensor) -> torch.Tensor:
    """Flat int64 indices of the True entries of ``mask``."""
    if _numpy_ok(mask) and mask.is_contiguous():
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return mask.reshape(-1).nonzero().squeeze(1)
