"""Importance criteria of the baseline methods, and how a kept fraction becomes masks.

Pure tensor functions (no hooks, no state), kept apart from the pruners that apply them, as
Torch-Pruning separates importance from pruning: a higher score means more worth keeping, and
entries already pruned never come back through these functions (they score ``-inf``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch


def magnitude_scores(weight: torch.Tensor) -> torch.Tensor:
    """``|w|`` per entry."""
    return weight.detach().abs().float()


def random_scores(shape: tuple[int, ...], seed: int, salt: int = 0) -> torch.Tensor:
    """A fixed random priority per entry, reproducible from ``seed`` (and a per-layer
    ``salt``): the same entries rank lowest at every step, so random masks are nested."""
    generator = torch.Generator().manual_seed((seed * 1_000_003 + salt) % (2**63))
    return torch.rand(shape, generator=generator)


def unit_norm_scores(weight: torch.Tensor, p: int) -> torch.Tensor:
    """The Lp norm of each output unit's incoming weights (a filter or a neuron's row)."""
    return weight.detach().float().flatten(1).norm(p=p, dim=1)


def keep_count(fraction: float, total: int) -> int:
    """Entries kept out of ``total`` for a kept ``fraction`` (nearest integer, at least 1)."""
    return max(1, min(total, math.floor(fraction * total + 0.5)))


def _top_k_flat(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the ``k`` largest entries of 1-D ``flat`` (ties: lower index first).

    One selection (``kthvalue``) instead of a sort: the threshold value t is found, every
    entry above it is kept, and the remaining places go to the first entries equal to t.
    """
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if k <= 0:
        return keep
    if k >= flat.numel():
        return keep.fill_(True)
    threshold = torch.kthvalue(flat, flat.numel() - k + 1).values
    keep = flat > threshold
    ties = (flat == threshold).nonzero().flatten()
    keep[ties[: k - int(keep.sum())]] = True
    return keep


def top_k_mask(scores: torch.Tensor, alive: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the ``k`` highest-scoring entries among ``alive`` ones (ties: lower flat
    index first, so the choice is deterministic)."""
    flat = scores.flatten().float().masked_fill(~alive.flatten(), -math.inf)
    k = min(k, int(alive.sum()))
    return _top_k_flat(flat, k).reshape(scores.shape)


def layerwise_keep(scores: Mapping[str, torch.Tensor], alive: Mapping[str, torch.Tensor],
                   fractions: Mapping[str, float]) -> dict[str, torch.Tensor]:
    """Per-layer thresholds: each layer keeps ``fractions[name]`` of its own entries."""
    return {name: top_k_mask(s, alive[name], keep_count(fractions[name], s.numel()))
            for name, s in scores.items()}


def global_keep(scores: Mapping[str, torch.Tensor], alive: Mapping[str, torch.Tensor],
                fraction: float, sizes: Mapping[str, int] | None = None
                ) -> dict[str, torch.Tensor]:
    """One threshold over all layers: the highest scores are kept until ``fraction`` of all
    weights is reached. ``sizes[name]`` is the number of weights one score stands for (the
    fan-in of a unit for structured pruning; 1 per entry when None)."""
    names = list(scores)
    flat = torch.cat([scores[n].flatten().float().masked_fill(~alive[n].flatten(), -math.inf)
                      for n in names])
    live = int(torch.isfinite(flat).sum())
    if sizes is None:  # one weight per score: the k best, by selection
        keep = _top_k_flat(flat.cpu(), min(live, max(1, math.floor(fraction * flat.numel()
                                                                   + 0.5))))
    else:
        cost = torch.cat([torch.full((scores[n].numel(),), sizes.get(n, 1), dtype=torch.float64)
                          for n in names])
        order = torch.argsort(flat.cpu(), descending=True, stable=True)
        # Keep the best-ranked units while the weights they stand for fit the budget.
        within = torch.cumsum(cost[order], 0) <= fraction * float(cost.sum()) + 0.5
        within[:live] |= torch.arange(live) == 0  # never prune every unit
        within[live:] = False
        keep = torch.zeros(flat.numel(), dtype=torch.bool)
        keep[order[within]] = True
    out, offset = {}, 0
    for n in names:
        size = scores[n].numel()
        out[n] = keep[offset:offset + size].reshape(scores[n].shape).to(scores[n].device)
        offset += size
    return out


def normalised_per_layer(scores: Mapping[str, torch.Tensor],
                         alive: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Scores divided by their layer's mean over alive entries, so that a global ranking of
    units compares layers of different fan-in and scale (Torch-Pruning's ``normalizer='mean'``
    idea)."""
    out = {}
    for name, s in scores.items():
        live = s[alive[name]]
        scale = float(live.mean()) if live.numel() else 1.0
        out[name] = s / scale if scale > 0 else s
    return out
