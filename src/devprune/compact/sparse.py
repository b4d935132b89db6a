"""Inference-only CSR linear layers for the unstructured sparsity compaction leaves behind.

After dead units are removed, the kept units' pruned synapses are zeros in dense weights.
Dense kernels ignore zeros, so that sparsity gives no speed. A CSR matrix product
(``torch.sparse.mm``) skips them but pays for irregular memory access: on these CPUs it beats
the dense ``F.linear`` only above a break-even sparsity (measured by
``benchmarks/bench_compact.py``, recorded in docs/COMPACT.md: about 85-95 % zeros, higher for
larger batches — and an SNN folds T into the batch). :func:`sparsify_linears` therefore swaps
only layers at or above ``min_sparsity`` (default :data:`CSR_MIN_SPARSITY`), and only when
asked: results agree with the dense layer to float rounding, not bit for bit.

Only the ``linear`` family of :mod:`devprune.kinds` (``LINEAR_LAYERS``: ``nn.Linear`` and its
subclasses, devprune's multi-step ``Linear`` included) has a CSR layer; convolutions
(``conv``: every other weight layer) stay dense.
"""

from __future__ import annotations

import torch
from torch import nn

from devprune.kinds import LINEAR_LAYERS

# Measured (benchmarks/results/compact.md, 1 thread): CSR wins from ~85-90 % zeros at 32 rows
# but only reliably from ~95 % at 128-640 rows (an SNN folds T into the rows).
CSR_MIN_SPARSITY = 0.95


class CSRLinear(nn.Module):
    """``y = x W^T + b`` with ``W`` stored as a ``torch.sparse_csr`` matrix (no training).

    Accepts any leading dimensions, so it replaces single-step and multi-step
    (``[T, B, features]``) linears alike; ``step_mode`` is copied from the replaced layer.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.step_mode = getattr(linear, "step_mode", "s")
        self.register_buffer("weight", linear.weight.detach().to_sparse_csr())
        bias = linear.bias.detach().clone() if linear.bias is not None else None
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        out = torch.sparse.mm(self.weight, rows.t()).t()
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        nnz = self.weight.values().numel()
        density = nnz / max(self.in_features * self.out_features, 1)
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"density={density:.3f}"


def sparsity(weight: torch.Tensor) -> float:
    return 1.0 - float((weight != 0).sum()) / max(weight.numel(), 1)


def sparsify_linears(model: nn.Module, min_sparsity: float = CSR_MIN_SPARSITY) -> list[str]:
    """Replace, in place, every linear layer (``kinds.LINEAR_LAYERS``; convolutions stay
    dense) with at least ``min_sparsity`` zero weights by a :class:`CSRLinear`; returns the
    replaced module names. Use on a compacted model, for inference only."""
    replaced = []
    for name, module in list(model.named_modules()):
        if isinstance(module, LINEAR_LAYERS) and sparsity(module.weight) >= min_sparsity:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, CSRLinear(module))
            replaced.append(name)
    return replaced
