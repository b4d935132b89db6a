"""SD-SNN's synaptic regeneration: persistence counters over pruned entries
(docs/SDSNN.md#sdsnn-regrowth).

A candidate (a pruned synapse of a linear layer, or a whole pruned kernel of a conv layer)
whose signal exceeds the layer's p(e)-th percentile this epoch *and* exceeded it at the
previous epoch gets its count incremented; any other epoch resets it. A count strictly above
``max_count`` restores the candidate (the reference's ``> C_g``), so restoring takes
``max_count + 2`` consecutive epochs above the percentile.
"""

from __future__ import annotations

import torch

from devprune.pruning.importance import percentile
from devprune.pruning.spine_ranges import count_run_, counter_dtype

SIGNALS = ("weight", "magnitude", "gradient")


def regrowth_percentile(epoch: int, start: int, p0: float, growth: float, cap: float) -> float:
    """``p(e) = min(cap, p0 + growth^(e - start))``; ``start`` is the first regrowth epoch
    (2C+1: the reference's literal 37)."""
    try:
        value = p0 + growth ** (epoch - start)
    except OverflowError:  # growth^k overflows long after reaching the cap
        return cap
    return min(cap, value)


def candidate_signal(values: torch.Tensor, signal: str, kernels: bool) -> torch.Tensor:
    """The per-candidate signal: per weight for linear layers, summed over each kernel of a
    conv layer (``[out, in]``). ``weight`` keeps the sign, as the reference does (only
    positive values can qualify, docs/SDSNN.md#sdsnn-signed-regrowth); ``magnitude`` and
    ``gradient`` are |.|.

    ``values`` is the weight (``weight``/``magnitude``) or the epoch's summed gradient."""
    per_entry = values if signal == "weight" else values.abs()
    return per_entry.flatten(2).sum(2) if kernels and per_entry.dim() > 2 else per_entry


class RegrowthTracker:
    """Counters of one layer's regeneration candidates."""

    def __init__(
        self, shape: torch.Size | tuple[int, ...], device: torch.device, max_count: int
    ) -> None:
        self.count = torch.zeros(shape, dtype=counter_dtype(max_count + 1), device=device)
        self.was_above = torch.zeros(shape, dtype=torch.bool, device=device)

    @torch.no_grad()
    def step(
        self, signal: torch.Tensor, candidates: torch.Tensor, q: float, max_count: int
    ) -> tuple[torch.Tensor, float]:
        """One epoch: returns (bool tensor of candidates to restore, the percentile value).

        The percentile is taken over ALL entries of ``signal`` (kept ones included)."""
        threshold = float(percentile(signal.detach().float(), q))
        count_run_(candidates & (signal > threshold), self.was_above, self.count)
        restore = self.count > max_count
        if bool(restore.any()):
            self.count.masked_fill_(restore, 0)
            # A restored entry starts from scratch if it is ever pruned again.
            self.was_above.masked_fill_(restore, False)
        return restore, threshold

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"count": self.count.cpu().clone(), "was_above": self.was_above.cpu().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name in ("count", "was_above"):
            current = getattr(self, name)
            if state[name].shape != current.shape:
                raise ValueError(
                    f"regrowth tensor {name!r} has shape {tuple(state[name].shape)}, "
                    f"expected {tuple(current.shape)}"
                )
            setattr(self, name, state[name].to(current.device, current.dtype))
