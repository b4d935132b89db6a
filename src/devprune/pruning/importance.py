"""The arithmetic of DPAP (docs/DPAP.md#dpap-method) as pure functions on tensors.

Nothing here knows about models, hooks or masks: every function takes tensors and numbers and
returns tensors, so each formula can be pinned by a unit test against values worked out by
hand. Shapes: ``post`` is ``[B, out]`` and ``pre`` is ``[B, in]`` (one trace value per sample
and unit, channels already summed over space for convolutions).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from devprune.cpu_ops import blocks, count
from devprune.snn.layers import repeated_over_time

READOUTS = ("last", "mean")
EMPTY_RANGE = ("half", "sign")


# --------------------------------------------------------------------------------------------
# Activity trace (docs/DPAP.md#dpap-trace)
# --------------------------------------------------------------------------------------------
def readout_weights(
    steps: int, delta: float = 0.5, readout: str = "last", *, device=None, dtype=None
) -> torch.Tensor:
    """Per-step weights ``w[t]`` with ``readout(o) = sum_t w[t] * o[t]``.

    The trace is linear in the spikes, so both readouts are a weighted sum over time:
    ``last`` = ``x[T] / T`` (the reference: ``w[t] = delta^(T-t) / T``) and ``mean`` =
    ``(1/T) sum_t x[t]`` (``w[t] = (1 + delta + ... + delta^(T-t)) / T``). Computing the
    readout as one weighted sum avoids a Python loop over time steps in the training loop.
    """
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    lags = torch.arange(steps - 1, -1, -1)  # T - t for t = 1..T
    powers = torch.full((steps,), float(delta), dtype=torch.float64) ** torch.arange(steps)
    # last: delta^(T-t); mean: 1 + delta + ... + delta^(T-t) (the steps t' >= t that see o[t])
    weights = powers[lags] if readout == "last" else powers.cumsum(0)[lags]
    return (weights / steps).to(device=device, dtype=dtype or torch.get_default_dtype())


def unit_activity(x: torch.Tensor) -> torch.Tensor:
    """``[B, units, *space] -> [B, units]``: convolution channels are summed over space."""
    return x.flatten(2).sum(2) if x.dim() > 2 else x


def trace_readout(
    spikes: torch.Tensor, delta: float = 0.5, readout: str = "last"
) -> torch.Tensor:
    """``[T, B, units, *space] -> [B, units]``: the readout of the trace, summed over space.

    An input repeated over time (``expand``: stride 0 along T, e.g. a directly encoded image)
    is read out as ``(sum_t w[t]) * x`` without copying it T times. Otherwise the weighted
    sum over time is a ``tensordot``. (A matrix-vector product ``w @ per_step.flatten(1)``,
    tried in session 7, gave the same bits on every case checked in session 8: T = 4, 8, 20,
    both readouts, binary and real-valued steps, 1 and 2 threads; and the same snn-small DPAP
    run. It is ~0.1 ms faster per batch on snn-mlp; tensordot stays.)
    """
    steps = spikes.shape[0]
    weights = readout_weights(steps, delta, readout, device=spikes.device, dtype=spikes.dtype)
    if repeated_over_time(spikes):
        return unit_activity(spikes[0]) * weights.sum()
    per_step = unit_activity(spikes.flatten(0, 1)).unflatten(0, spikes.shape[:2])
    return torch.tensordot(weights, per_step, dims=([0], [0]))


# --------------------------------------------------------------------------------------------
# BCM accumulator (docs/DPAP.md#dpap-bcm)
# --------------------------------------------------------------------------------------------
# The BCM update itself (M += (a (a - theta))^T pre) and the per-unit threshold (theta = sum a /
# samples) run in place inside dpap.LayerStatistics (dpap.accumulate_hebbian: the active units'
# rows, or one addmm_, with no [out, in] temporary); the tests pin them there
# (tests/pruning/test_importance.py), not a copy here.
def running_mean_per_slot(
    theta: torch.Tensor, counts: torch.Tensor, post: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's threshold: a running mean per position ``b`` in the mini-batch,
    ``theta^b(k) = ((k-1) theta^b(k-1) + a^b) / k``. A batch smaller than the slot table
    updates its first rows only (the reference crashed on such batches)."""
    rows = post.shape[0]
    counts = counts.clone()
    theta = theta.clone()
    counts[:rows] += 1
    k = counts[:rows].unsqueeze(1).to(post.dtype)
    theta[:rows] = theta[:rows] + (post - theta[:rows]) / k
    return theta, counts


# --------------------------------------------------------------------------------------------
# Importance (docs/DPAP.md#dpap-importance)
# --------------------------------------------------------------------------------------------
def minmax_normalise(v: torch.Tensor) -> torch.Tensor:
    """``(v - min) / (max - min)``; 0.5 everywhere when ``v`` is constant (no information)."""
    lo, hi = torch.aminmax(v)
    if hi <= lo:
        return torch.full_like(v, 0.5)
    return (v - lo) / (hi - lo)


def spine_importance(bcm: torch.Tensor, activity: torch.Tensor) -> torch.Tensor:
    """Neuron / filter importance ``S_i = N(sum_j M_ij) * N(A_i)``."""
    return minmax_normalise(bcm.sum(1)) * minmax_normalise(activity)


# --------------------------------------------------------------------------------------------
# Percentiles and robust normalisation (docs/DPAP.md#dpap-normalisation)
# --------------------------------------------------------------------------------------------
_BRACKET_ABOVE = 1 << 18  # entries; below this a plain selection is as fast
_SAMPLE = 1 << 16

# The selection below works on numpy arrays for CPU float tensors (zero-copy views): numpy's
# comparisons, boolean indexing and introselect are 3-4x faster than torch's here (bool
# outputs, nonzero) and ``torch.kthvalue`` is quadratic on reversed input (a minute for
# 10^6 entries). Elsewhere (GPU, other dtypes) the same code runs on tensors.
Array = torch.Tensor | np.ndarray


def _as_arrays(
    v: torch.Tensor, population: torch.Tensor | None
) -> tuple[Array, Array | None]:
    """numpy views of ``v`` and ``population`` when ``v`` is a CPU float tensor."""
    if v.device.type != "cpu" or v.dtype not in (torch.float32, torch.float64):
        return v, population
    return v.detach().numpy(), None if population is None else population.cpu().numpy()


def _chosen(v: Array, population: Array | None) -> Array:
    """The entries of flat ``v`` that ``population`` (flat bool, None: all) selects; numpy's
    ``compress`` takes half the time of boolean indexing (20 vs 40 ms for 2% of 16.8 M)."""
    if population is None:
        return v
    return np.compress(population, v) if isinstance(v, np.ndarray) else v[population]


def _select_two(pool: Array, i: int, j: int) -> tuple[Array, Array]:
    """The entries of 0-based ranks ``i <= j`` of flat ``pool`` (0-d, pool's dtype)."""
    if isinstance(pool, np.ndarray):
        part = np.partition(pool, [i] if i == j else [i, j])
        return part[i], part[j]
    first = torch.kthvalue(pool, i + 1).values
    return first, first if j == i else torch.kthvalue(pool, j + 1).values


def _bracket(v: Array, population: Array | None, n: int, k: int) -> tuple[Any, Any]:
    """Values ``(left, right)`` that a strided sample of the chosen entries puts around the
    k-th smallest; None is an open end (the rank is within the margin of the sample's end,
    so no comparison is needed on that side and the bracket cannot miss there)."""
    stride = max(1, len(v) // _SAMPLE)
    sample = _chosen(v[::stride], None if population is None else population[::stride])
    m = len(sample)
    if m < 2 or n < 2:
        return None, None
    rank = int((k - 1) / (n - 1) * (m - 1))
    margin = max(64, m // 64)  # ~10 binomial standard deviations of a sample rank
    low, high = rank - margin, rank + margin + 1
    left, right = _select_two(sample, max(low, 0), min(high, m - 1))
    return (left if low >= 0 else None), (right if high < m else None)


# entries of one block of the bracket pass over a numpy array: its six numpy calls per block
# make blocks larger than cpu_ops.BLOCK pay (measured on the 16.8 M FC: 34 ms at 2^18 against
# 47 ms at 2^15)
_BLOCK = 1 << 18


def _count_and_inside(
    v: Array, population: Array | None, left: Any, right: Any
) -> tuple[int, Array]:
    """How many chosen entries lie below ``left``, and the chosen entries in
    ``[left, right]``. A numpy array goes block by block: the comparisons' bool temporaries
    stay cache-sized and come from the allocator's heap, where two layer-sized ones cost
    ~20 ms of page faults per pass on the 16.8 M FC (measured: 45 -> 34 ms for a P75 pass)."""
    if not isinstance(v, np.ndarray) or len(v) <= _BLOCK:
        return _count_and_inside_block(v, population, left, right)
    below, inside = 0, []
    for part in blocks(len(v), _BLOCK):
        count_below, chosen = _count_and_inside_block(
            v[part], None if population is None else population[part], left, right)
        below += count_below
        inside.append(chosen)
    return below, np.concatenate(inside)


def _count_and_inside_block(
    v: Array, population: Array | None, left: Any, right: Any
) -> tuple[int, Array]:
    """:func:`_count_and_inside` of one block, from two comparisons over ``v`` (no copy of the
    chosen entries): ``v < left`` implies ``v <= right``, so their xor is the bracket."""
    inside = v <= right if right is not None else None
    below_mask = v < left if left is not None else None
    if below_mask is not None and population is not None:
        below_mask &= population
    below = count(below_mask) if below_mask is not None else 0
    if inside is None:  # open right end
        inside = ~below_mask if below_mask is not None else population
    elif below_mask is not None:
        inside ^= below_mask  # population-masked below_mask stays a subset of inside
    if population is not None and inside is not population:
        inside &= population
    return below, v if inside is None else _chosen(v, inside)  # (torch: masked_select is slower)


def _kth_smallest_pair(
    v: torch.Tensor, k: int, population: torch.Tensor | None = None, n: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k-th and (k+1)-th smallest chosen entries (1-based; k+1 clipped to ``n``, the
    number of chosen entries) of flat ``v``, as 0-d tensors of ``v``'s dtype.

    On large tensors a strided sample first brackets the answer; only the entries inside the
    bracket are then selected exactly. The counts are exact, so is the result; when the
    bracket misses (possible only for adversarial orderings) a full selection runs instead.
    A full selection over the 16.8 M synapses of the reference FC layer is the slowest part
    of a pruning step otherwise; selecting through ``population`` instead of copying the
    chosen entries out first saves a gather of the layer.
    """
    n = _chosen_count(v, population) if n is None else n
    k2 = min(k + 1, n)
    values, chosen = _as_arrays(v, population)
    pool, offset = None, 0
    if len(values) > _BRACKET_ABOVE:
        left, right = _bracket(values, chosen, n, k)
        below, inside = _count_and_inside(values, chosen, left, right)
        if below < k and k2 <= below + len(inside):
            pool, offset = inside, below
    if pool is None:
        pool = _chosen(values, chosen)
    first, second = _select_two(pool, k - offset - 1, k2 - offset - 1)
    return torch.as_tensor(first, device=v.device), torch.as_tensor(second, device=v.device)


def negative(v: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``v < 0`` as a bool tensor (into ``out``, a bool tensor shaped like ``v``, when given:
    a reused buffer saves a layer-sized allocation's page faults); on the CPU through numpy,
    ~3x faster than torch's comparison into a bool tensor on synapse-sized layers."""
    values, _ = _as_arrays(v, None)
    if isinstance(values, np.ndarray) and (out is None or out.is_contiguous()):
        if out is None:
            return torch.from_numpy(np.less(values, 0))
        np.less(values, 0, out=out.numpy())
        return out
    return torch.lt(v, 0, out=out) if out is not None else v < 0


def _chosen_count(v: torch.Tensor, population: torch.Tensor | None) -> int:
    return v.numel() if population is None else count(population)


def percentile(
    v: torch.Tensor, q: float, population: torch.Tensor | None = None
) -> torch.Tensor:
    """The q-th percentile of all entries (of those ``population``, a bool mask shaped like
    ``v``, selects), numpy's default ``linear`` interpolation.

    Works on any size (``torch.quantile`` refuses more than 2^24 entries) and on any device.
    """
    flat = v.flatten()
    chosen = None if population is None else population.flatten()
    n = _chosen_count(flat, chosen)
    if n == 0:
        raise ValueError("percentile of an empty tensor")
    return _percentile_flat(flat, q, chosen, n)


def _percentile_flat(
    flat: torch.Tensor, q: float, chosen: torch.Tensor | None, n: int
) -> torch.Tensor:
    """:func:`percentile` of flat ``flat`` over the ``n`` entries ``chosen`` selects."""
    if q <= 0 or q >= 100:  # the extremes
        largest = q >= 100
        if chosen is None:
            return flat.max() if largest else flat.min()
        # a selection of rank 1 or n: on a large layer a comparison pass plus the few entries
        # the sample's bracket leaves (numpy's masked reduction, where=, branches on every
        # entry of an irregular mask: ~8x as long on the 16.8 M FC)
        return _kth_smallest_pair(flat, n if largest else 1, chosen, n)[0]
    position = q / 100.0 * (n - 1)
    below = math.floor(position)
    frac = position - below
    lower, upper = _kth_smallest_pair(flat, below + 1, chosen, n)
    return lower + (upper - lower) * frac


def robust_normalise(
    v: torch.Tensor,
    low_pct: float,
    high_pct: float,
    population: torch.Tensor | None = None,
    *,
    out: torch.Tensor | None = None,
    empty_range: str = "half",
) -> torch.Tensor:
    """``clip((v - P_low) / (P_high - P_low), 0, 1)``, percentiles over ``population`` (a
    bool mask selecting the entries that set the scale; all entries when None). ``out``: a
    buffer shaped like ``v`` to write the result into (no layer-sized temporary).

    When the range is empty (``P_high <= P_low``): ``empty_range="half"`` gives every entry
    0.5, as the reference's ``unit()`` does (its ``marge == 0`` branch); ``"sign"`` gives
    entries above the range 1, below it 0 and on it 0.5 (devprune's default mode: the few
    entries above a collapsed range are the informative ones).
    """
    if empty_range not in EMPTY_RANGE:
        raise ValueError(f"empty_range must be one of {EMPTY_RANGE}, got {empty_range!r}")
    flat = v.flatten()
    chosen = None if population is None else population.flatten()
    n = _chosen_count(flat, chosen)
    if n == 0:
        return torch.full_like(v, 0.5)
    lo = _percentile_flat(flat, low_pct, chosen, n)
    hi = _percentile_flat(flat, high_pct, chosen, n)
    if hi <= lo:
        if empty_range == "half":
            return torch.full_like(v, 0.5)
        return (torch.sign(v - lo) + 1) / 2
    # v may be 16.8 M long: at most one temporary, none with ``out``
    return torch.sub(v, lo, out=out).div_(hi - lo).clamp_(0.0, 1.0)


# --------------------------------------------------------------------------------------------
# Reserve dynamics (docs/DPAP.md#dpap-reserve)
# --------------------------------------------------------------------------------------------
def developmental_factor(step: int, e0: int, kappa: float) -> float:
    """``g(e) = exp(-trunc((e - e0) / kappa))`` with Python ``int()`` truncation (toward zero,
    so steps shortly before ``e0`` also get g = 1, as in the reference)."""
    return math.exp(-int((step - e0) / kappa))


def reserve_increment(u: torch.Tensor, offset: float, bonus: float) -> torch.Tensor:
    """``d = 2u - c``, plus the bonus ``beta`` wherever ``d > 0`` ("use it")."""
    d = 2.0 * u - offset
    return d + bonus * (d > 0).to(d.dtype)


def reserve_update(
    reserve: torch.Tensor,
    u: torch.Tensor,
    *,
    offset: float,
    bonus: float,
    factor: float,
    gamma: float = 0.999,
) -> torch.Tensor:
    """``P = gamma * P + d(u) * g``; a unit whose reserve turns negative is pruned.

    Out of place, for unit-sized reserves; DPAP's synapse step runs :func:`reserve_update_`,
    whose rounding differs (it fuses ``g`` into each term), so each is pinned by hand.
    """
    return gamma * reserve + reserve_increment(u, offset, bonus) * factor


def reserve_update_(
    reserve: torch.Tensor,
    u: torch.Tensor,
    *,
    offset: float,
    bonus: float,
    factor: float,
    gamma: float = 0.999,
) -> torch.Tensor:
    """In-place :func:`reserve_update` for synapse-sized tensors: overwrites ``reserve`` and
    uses ``u`` as scratch (no temporaries the size of the layer)."""
    d = u.mul_(2.0).sub_(offset)
    reserve.mul_(gamma).add_(d, alpha=factor)
    # d turns into its 0/1 indicator in place: adding a float 0/1 gives the same bits as
    # adding the bool mask, without torch's ~7x slower bool-to-float add path
    return reserve.add_(d.gt_(0), alpha=bonus * factor)
