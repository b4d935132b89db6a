"""Whole-layer elementwise steps through numpy views on the CPU (issue #17).

On synapse-sized tensors (the 16.8 M FC of the BrainCog CIFAR net) torch's CPU paths that
read or write bool tensors are several times slower than numpy's on the same memory:
multiplying a float tensor by a bool mask ~4x, a comparison into a bool tensor ~3x,
``nonzero`` ~4x. These helpers give the same results (same bits: numpy casts the bool to
0/1 and multiplies, as torch does) and fall back to torch off the CPU or for other dtypes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


# -- array views for whole-layer bookkeeping ---------------------------------------------------
# The SD-SNN epoch step runs its elementwise passes and its sparse gathers / scatters on numpy
# views of the CPU tensors: numpy runs them on one thread, where torch's 2-thread kernels on a
# loaded shared machine wait for the second thread in every parallel region (a gather of 275 k
# entries: ~8 ms in torch on 2 threads, ~1.5 ms in numpy; a uint8 row count of the 16.8 M FC:
# ~60 ms vs ~3 ms). Off the CPU the same code runs on the torch tensors: the functions below
# and plain indexing (``a[index]``, ``a[index] = v``, ``a[bool]``) mean the same in both.

def array(t: torch.Tensor) -> np.ndarray | torch.Tensor:
    """A numpy view of a contiguous CPU tensor of a handled dtype, else ``t`` itself. Writes
    through the view change ``t`` (without bumping its autograd version: state buffers only)."""
    if _numpy_ok(t) and t.is_contiguous():
        return t.numpy()
    return t


def flat(t: torch.Tensor) -> np.ndarray | torch.Tensor:
    """:func:`array` of ``t`` flattened (a view)."""
    return array(t).reshape(-1)


def nonzero(a: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Flat indices of the non-zero entries of the flat ``a`` (same kind as ``a``)."""
    if isinstance(a, np.ndarray):
        return np.flatnonzero(a)
    return a.reshape(-1).nonzero().squeeze(1)


def count(a: np.ndarray | torch.Tensor) -> int:
    """Number of non-zero (True) entries."""
    if isinstance(a, torch.Tensor):
        a = array(a)
    if isinstance(a, np.ndarray):
        return int(np.count_nonzero(a))
    return int(torch.count_nonzero(a))


def any_true(a: np.ndarray | torch.Tensor) -> bool:
    """Whether any entry is non-zero (a full count: numpy's ``any`` is a slow reduction)."""
    return count(a) > 0


def all_true(a: np.ndarray | torch.Tensor) -> bool:
    """Whether every entry is non-zero. numpy's ``all`` stops at the first zero and reads
    bools ~10x faster than torch's ``Tensor.all`` (25-40 ms on the 16.8 M FC's mask)."""
    if isinstance(a, torch.Tensor):
        a = array(a)
    return bool(a.all())


def binary(op: str, x: np.ndarray | torch.Tensor, y: Any,
           out: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """``out = op(x, y)`` elementwise for ``op`` a numpy ufunc name (unary ones such as
    ``absolute``, ``logical_not``: ``y`` None) on arrays from :func:`array` (numpy views, or
    tensors off the CPU); ``y`` may be a scalar. Returns ``out``."""
    if isinstance(out, np.ndarray):
        ufunc = getattr(np, op)
        return ufunc(x, out=out) if y is None else ufunc(x, y, out=out)
    fn = getattr(torch, _TORCH_NAMES.get(op, op))
    return fn(x, out=out) if y is None else fn(x, y, out=out)


_TORCH_NAMES = {"absolute": "abs", "greater_equal": "ge", "less_equal": "le", "greater": "gt",
                "less": "lt", "subtract": "sub", "divide": "div", "multiply": "mul"}


def row_counts(mask: torch.Tensor) -> torch.Tensor:
    """int32 count of the True entries of each row (dim 0) of a bool tensor."""
    rows = array(mask)
    if isinstance(rows, np.ndarray):
        per_row = rows.reshape(rows.shape[0], -1).view(np.uint8)
        return torch.from_numpy(per_row.sum(1, dtype=np.int32))
    # A uint8 view summed in int32 is about 2x faster than a bool count per row.
    return mask.flatten(1).view(torch.uint8).sum(1, dtype=torch.int32)


# Elements per block of a blocked chain of elementwise passes: a few float and bool blocks of
# this size stay in the core's L2 cache, so a chain of k passes over a layer reads and writes
# main memory about once instead of k times.
BLOCK = 1 << 15


def blocks(n: int, size: int = BLOCK) -> list[slice]:
    """Slices cutting ``range(n)`` into ``size``-entry blocks (default :data:`BLOCK`)."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def any_trailing(mask: torch.Tensor, keep: int) -> torch.Tensor:
    """``mask.flatten(keep).any(keep)``: a bool tensor of ``mask.shape[:keep]``, True where
    any entry of the trailing dimensions is (e.g. ``keep=1``: a unit with a kept entry in its
    row; ``keep=2``: a conv kernel slice with a kept entry). Through a uint8 view's max on the
    CPU, ~30x faster than torch's bool ``any`` over a dimension on the 16.8 M FC."""
    values = array(mask)
    if isinstance(values, np.ndarray) and values.dtype == np.bool_:
        rows = values.reshape(int(np.prod(mask.shape[:keep])), -1)
        if rows.shape[1] == 0:
            return torch.zeros(mask.shape[:keep], dtype=torch.bool)
        return torch.from_numpy(rows.view(np.uint8).max(1).view(np.bool_)).reshape(
            mask.shape[:keep])
    return mask.flatten(keep).any(keep)


def count_kept_nonzero(x: torch.Tensor, mask: torch.Tensor) -> int:
    """``count_nonzero((x != 0) & mask)`` (``mask`` bool, shaped like ``x``); on the CPU in
    cache-sized blocks, without the two layer-sized bool temporaries."""
    values, kept = array(x), array(mask)
    if not (isinstance(values, np.ndarray) and isinstance(kept, np.ndarray)
            and kept.dtype == np.bool_ and values.shape == kept.shape):
        return int(torch.count_nonzero((x != 0) & mask))
    values, kept = values.reshape(-1), kept.reshape(-1)
    buffer = np.empty(min(BLOCK, values.size), dtype=bool)
    total = 0
    for block in blocks(values.size):
        flags = np.not_equal(values[block], 0, out=buffer[:block.stop - block.start])
        total += int(np.count_nonzero(np.logical_and(flags, kept[block], out=flags)))
    return total


def clear_where(mask: torch.Tensor, remove: torch.Tensor) -> int:
    """``mask &= ~remove`` in place for bool tensors (``remove`` broadcastable); returns how
    many True entries of ``mask`` it cleared. On the CPU, same shapes, in cache-sized blocks:
    no layer-sized temporary (a fresh one costs ~10 ms of page faults on the 16.8 M FC)."""
    m, r = array(mask), array(remove)
    if not (isinstance(m, np.ndarray) and isinstance(r, np.ndarray) and m.dtype == np.bool_
            and r.dtype == np.bool_ and m.shape == r.shape):
        newly = mask & remove
        cleared = count(newly)
        if cleared:
            mask ^= newly  # == mask & ~remove, without a negated copy
        return cleared
    m, r = m.reshape(-1), r.reshape(-1)
    buffer = np.empty(min(BLOCK, m.size), dtype=bool)
    cleared = 0
    for block in blocks(m.size):
        newly = np.logical_and(m[block], r[block], out=buffer[:block.stop - block.start])
        found = int(np.count_nonzero(newly))
        if found:
            np.logical_xor(m[block], newly, out=m[block])
            cleared += found
    if cleared:
        torch.autograd.graph.increment_version(mask)  # as torch's in-place write would
    return cleared


def logical_and(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a & b`` of bool tensors (broadcasting) as a new tensor; through numpy on the CPU
    (~3x faster than torch's bool kernel on the 16.8 M FC)."""
    x, y = array(a), array(b)
    if isinstance(x, np.ndarray) and isinstance(y, np.ndarray) \
            and x.dtype == np.bool_ and y.dtype == np.bool_:
        return torch.from_numpy(np.logical_and(x, y))
    return a & b
