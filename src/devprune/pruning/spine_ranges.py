"""SD-SNN's dendritic-spine ranges: one ``[lower, upper]`` interval per weight (METHOD.md 3.3).

Everything is a whole-tensor operation over the layer's weight: the reference keeps Python
sets of flat indices (14.7 s per epoch on the BrainCog CIFAR shapes); here every weight is
touched a few times per epoch, with int16 counters and bool "was beyond last epoch" flags.

Counting semantics (kept exactly, METHOD.md B3): a step is counted when a weight is beyond
its bound *this* epoch *and* was beyond it at the previous epoch, so a count of C needs C+1
consecutive epochs. When the count reaches C the bound moves by the mean overshoot D/C (D is
the sum of the counted overshoots) and the counter and D reset. Shrinkage counts epochs in
which ``|w|`` decreased in this epoch and in the previous one; at C both bounds are scaled by
``shrink_factor``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

COUNTER_DTYPE = torch.int16
MAX_COUNT_THRESHOLD = torch.iinfo(COUNTER_DTYPE).max


@dataclass
class RangeStepEvents:
    """How many weights of one layer had a bound moved in one update."""

    expanded_upper: int = 0
    expanded_lower: int = 0
    shrunk: int = 0


def _count_run(
    beyond: torch.Tensor, was_beyond: torch.Tensor, count: torch.Tensor
) -> torch.Tensor:
    """Advance ``count`` where the condition holds now and held last epoch; reset elsewhere.
    Returns the bool "counted this epoch" tensor and updates ``was_beyond`` in place."""
    counted = beyond & was_beyond
    was_beyond.copy_(beyond)
    count.add_(1).mul_(counted)
    return counted


class SpineRanges:
    """The range state of one layer (all tensors have the weight's shape)."""

    def __init__(self, weight: torch.Tensor, count_threshold: int, shrink_factor: float) -> None:
        if not 1 <= count_threshold <= MAX_COUNT_THRESHOLD:
            raise ValueError(f"count_threshold must be in [1, {MAX_COUNT_THRESHOLD}]")
        self.count_threshold = count_threshold
        self.shrink_factor = shrink_factor
        w = weight.detach().float()
        # The reference's initial range is symmetric around zero from the MAX (not max |w|,
        # not the min): r+ = max(W), r- = -max(W) (METHOD.md B2).
        top = w.max()
        self.upper = torch.full_like(w, float(top))
        self.lower = torch.full_like(w, -float(top))
        self.upper_count = torch.zeros_like(w, dtype=COUNTER_DTYPE)
        self.lower_count = torch.zeros_like(w, dtype=COUNTER_DTYPE)
        self.shrink_count = torch.zeros_like(w, dtype=COUNTER_DTYPE)
        self.upper_overshoot = torch.zeros_like(w)
        self.lower_overshoot = torch.zeros_like(w)
        # "Previous epoch" flags start empty, as the reference's sets do after initialisation.
        self.was_above = torch.zeros_like(w, dtype=torch.bool)
        self.was_below = torch.zeros_like(w, dtype=torch.bool)
        self.was_shrinking = torch.zeros_like(w, dtype=torch.bool)
        self.previous_magnitude = w.abs()

    # -- the epoch update -------------------------------------------------------------------
    @torch.no_grad()
    def update(self, weight: torch.Tensor) -> RangeStepEvents:
        """One epoch of range dynamics from the (masked) weight values."""
        w = weight.detach().float()
        events = RangeStepEvents()
        events.expanded_upper = self._expand(
            w, w >= self.upper, self.upper, self.was_above, self.upper_count, self.upper_overshoot
        )
        events.expanded_lower = self._expand(
            w, w <= self.lower, self.lower, self.was_below, self.lower_count, self.lower_overshoot
        )
        events.shrunk = self._shrink(w)
        return events

    def _expand(
        self,
        w: torch.Tensor,
        beyond: torch.Tensor,
        bound: torch.Tensor,
        was_beyond: torch.Tensor,
        count: torch.Tensor,
        overshoot: torch.Tensor,
    ) -> int:
        counted = _count_run(beyond, was_beyond, count)
        overshoot.add_(w).sub_(bound).mul_(counted)  # D += (w - r) on counted steps, else 0
        move = count >= self.count_threshold
        moved = int(move.sum())
        if moved:
            bound.addcmul_(overshoot, move, value=1.0 / self.count_threshold)
            count.masked_fill_(move, 0)
            overshoot.masked_fill_(move, 0.0)
        return moved

    def _shrink(self, w: torch.Tensor) -> int:
        magnitude = w.abs()
        _count_run(magnitude < self.previous_magnitude, self.was_shrinking, self.shrink_count)
        self.previous_magnitude = magnitude
        shrink = self.shrink_count >= self.count_threshold
        shrunk = int(shrink.sum())
        if shrunk:
            factor = torch.where(shrink, self.shrink_factor, 1.0)
            self.upper.mul_(factor)
            self.lower.mul_(factor)
            self.shrink_count.masked_fill_(shrink, 0)
        return shrunk

    # -- uses of the ranges -----------------------------------------------------------------
    @torch.no_grad()
    def clip_(self, weight: torch.Tensor) -> int:
        """Clamp ``weight`` into its ranges in place (synaptic constraint); returns how many
        entries were outside."""
        data = weight.data
        outside = int(((data > self.upper) | (data < self.lower)).sum())
        if outside:
            torch.clamp(data, min=self.lower, max=self.upper, out=data)
        return outside

    def width_importance(self) -> torch.Tensor:
        """Min-max normalised range width ``N(r+ + |r-|)`` over the whole layer; zeros when
        every width is equal (the reference's 0/0 leaves ties, i.e. index order)."""
        width = self.upper + self.lower.abs()
        lo, hi = torch.aminmax(width)
        if hi <= lo:
            return torch.zeros_like(width)
        return (width - lo) / (hi - lo)

    # -- persistence ------------------------------------------------------------------------
    _TENSORS = (
        "upper", "lower", "upper_count", "lower_count", "shrink_count", "upper_overshoot",
        "lower_overshoot", "was_above", "was_below", "was_shrinking", "previous_magnitude",
    )

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name).cpu().clone() for name in self._TENSORS}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name in self._TENSORS:
            current = getattr(self, name)
            saved = state[name]
            if saved.shape != current.shape:
                raise ValueError(
                    f"range tensor {name!r} has shape {tuple(saved.shape)}, expected "
                    f"{tuple(current.shape)}"
                )
            setattr(self, name, saved.to(current.device, current.dtype))
