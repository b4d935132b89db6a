"""SD-SNN's dendritic-spine ranges: one ``[lower, upper]`` interval per weight
(docs/SDSNN.md#sdsnn-ranges).

Everything is a whole-tensor operation over the layer's weight: the reference keeps Python
sets of flat indices (14.7 s per epoch on the BrainCog CIFAR shapes); here every weight is
touched a few times per epoch, with uint8/int16 counters and bool "was beyond last epoch" flags.

Counting semantics (kept exactly, docs/SDSNN.md#sdsnn-count-semantics): a step is counted when
a weight is beyond its bound *this* epoch *and* was beyond it at the previous epoch, so a count
of C needs C+1 consecutive epochs. When the count reaches C the bound moves by the mean
overshoot D/C (D is the sum of the counted overshoots) and the counter and D reset. Shrinkage
counts epochs in which ``|w|`` decreased in this epoch and in the previous one; at C both
bounds are scaled by ``shrink_factor``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from devprune.cpu_ops import BLOCK, array, binary, blocks, count, flat, nonzero

MAX_COUNT_THRESHOLD = torch.iinfo(torch.int16).max


def counter_dtype(limit: int) -> torch.dtype:
    """uint8 counters while counts stay below 255 (4x less memory traffic than int32 and a
    fast multiply by a bool viewed as uint8), int16 beyond."""
    return torch.uint8 if limit < torch.iinfo(torch.uint8).max else torch.int16


@dataclass
class RangeStepEvents:
    """How many weights of one layer had a bound moved in one update."""

    expanded_upper: int = 0
    expanded_lower: int = 0
    shrunk: int = 0


def count_run_(beyond: torch.Tensor, was_beyond: torch.Tensor, count: torch.Tensor
               ) -> torch.Tensor:
    """Advance ``count`` where the condition holds now and held last epoch, reset it elsewhere
    (in place). Returns the new "was beyond" flags, which are ``beyond`` itself: the caller
    keeps it as such, and ``was_beyond`` (overwritten here) becomes its scratch buffer, so
    the flags are swapped, never copied."""
    counted = binary("logical_and", array(was_beyond), array(beyond), array(was_beyond))
    counter = array(count)
    if isinstance(counter, np.ndarray):
        np.add(counter, 1, out=counter)  # counts stay below the dtype's max (counter_dtype)
        factor = counted.view(np.uint8) if counter.dtype == np.uint8 else counted
        np.multiply(counter, factor, out=counter)
    else:
        factor = counted.view(torch.uint8) if count.dtype == torch.uint8 else counted
        count.add_(1).mul_(factor)
    return beyond


class SpineRanges:
    """The range state of one layer (all tensors have the weight's shape)."""

    def __init__(self, weight: torch.Tensor, count_threshold: int, shrink_factor: float) -> None:
        if not 1 <= count_threshold <= MAX_COUNT_THRESHOLD:
            raise ValueError(f"count_threshold must be in [1, {MAX_COUNT_THRESHOLD}]")
        self.count_threshold = count_threshold
        self.shrink_factor = shrink_factor
        w = weight.detach().float()
        # The reference's initial range is symmetric around zero from the MAX (not max |w|,
        # not the min): r+ = max(W), r- = -max(W) (docs/SDSNN.md#sdsnn-initial-range).
        top = w.max()
        self.upper = torch.full_like(w, float(top))
        self.lower = torch.full_like(w, -float(top))
        dtype = counter_dtype(count_threshold)
        self.upper_count = torch.zeros_like(w, dtype=dtype)
        self.lower_count = torch.zeros_like(w, dtype=dtype)
        self.shrink_count = torch.zeros_like(w, dtype=dtype)
        self.upper_overshoot = torch.zeros_like(w)
        self.lower_overshoot = torch.zeros_like(w)
        # "Previous epoch" flags start empty, as the reference's sets do after initialisation.
        self.was_above = torch.zeros_like(w, dtype=torch.bool)
        self.was_below = torch.zeros_like(w, dtype=torch.bool)
        self.was_shrinking = torch.zeros_like(w, dtype=torch.bool)
        self.previous_magnitude = w.abs()
        # The other half of a double buffer for |w| (not state): a fresh 67 MB temporary per
        # epoch costs ~4x a pass over it here, in page faults.
        self._spare_magnitude: torch.Tensor | None = None
        # Likewise for the "beyond" flags: this epoch's comparison is written into the spare
        # and becomes the "was beyond" flags by a swap, not a copy.
        self._spare_flags: torch.Tensor | None = None
        self._clip_flags: torch.Tensor | None = None  # clip_'s second flag buffer
        # flat indices whose upper / lower count is non-zero (None: unknown, rescan)
        self._active: dict[str, torch.Tensor | None] = {"upper": None, "lower": None}

    # -- the epoch update -------------------------------------------------------------------
    @torch.no_grad()
    def update(self, weight: torch.Tensor) -> RangeStepEvents:
        """One epoch of range dynamics from the (masked) weight values."""
        w = weight.detach().float()
        events = RangeStepEvents()
        events.expanded_upper = self._expand(w, "upper")
        events.expanded_lower = self._expand(w, "lower")
        events.shrunk = self._shrink(w)
        return events

    # bound -> (comparison, "was beyond" flags, counter, overshoot sum)
    _BOUNDS: ClassVar[dict[str, tuple]] = {
        "upper": ("greater_equal", "was_above", "upper_count", "upper_overshoot"),
        "lower": ("less_equal", "was_below", "lower_count", "lower_overshoot"),
    }

    def _spare(self, like: torch.Tensor) -> torch.Tensor:
        """The spare bool flag buffer (scratch until it is swapped in as flags)."""
        spare = self._spare_flags
        if spare is None or spare.shape != like.shape or spare.device != like.device:
            spare = self._spare_flags = torch.empty_like(like, dtype=torch.bool)
        return spare

    def _expand(self, w: torch.Tensor, key: str) -> int:
        """Bound counters on flat indices: few weights sit beyond their bound, so after the
        full comparison and one scan of it only the counted entries (and last epoch's) are
        touched. The entries with a running count are remembered between epochs (they are
        last epoch's counted entries that did not move), so the counts are not rescanned.
        On the CPU everything runs on numpy views (``cpu_ops.array``)."""
        op, was_name, count_name, overshoot_name = self._BOUNDS[key]
        bound, count_, overshoot = (flat(getattr(self, n)) for n in
                                    (key, count_name, overshoot_name))
        beyond = self._spare(w)
        if all(isinstance(a, np.ndarray) for a in (flat(w), bound, flat(beyond))):
            return self._expand_blocked(w, key)
        now = nonzero(binary(op, flat(w), bound, flat(beyond)))
        was_beyond = getattr(self, was_name)
        counted = now[flat(was_beyond)[now]] if len(now) else now
        # this epoch's flags become last epoch's: a swap with the spare, not a copy
        setattr(self, was_name, beyond)
        self._spare_flags = was_beyond
        new_count = count_[counted] + 1
        new_over = overshoot[counted] + (flat(w)[counted] - bound[counted])
        active = self._active.get(key)
        if active is None:
            active = nonzero(count_)
        count_[active] = 0  # every uncounted entry resets
        overshoot[active] = 0.0
        move = new_count >= self.count_threshold
        moved = count(move)
        if moved:
            bound[counted[move]] += new_over[move] / self.count_threshold
            new_count[move] = 0
            new_over[move] = 0.0
        count_[counted] = new_count
        overshoot[counted] = new_over
        self._active[key] = counted[~move] if moved else counted
        return moved

    def _expand_blocked(self, w: torch.Tensor, key: str) -> int:
        """:meth:`_expand` on the CPU, dense and blocked: the beyond entries are too many
        (a few % of the FC: a gather at each touches about half the cache lines of the
        layer) for flat indices to pay, so every counter is advanced in cache-sized blocks,
        with the same float32 operations per counted entry (``over + (w - bound)``, then
        ``bound + over / C`` where the count reaches C) and zeros elsewhere."""
        op, was_name, count_name, overshoot_name = self._BOUNDS[key]
        compare = getattr(np, op)
        flags, previous = self._spare(w), getattr(self, was_name)
        values, bound, beyond, was_beyond, count_, overshoot = (
            flat(t) for t in (w, getattr(self, key), flags, previous,
                              getattr(self, count_name), getattr(self, overshoot_name)))
        size = min(BLOCK, values.size)
        counted_buf, move_buf = np.empty(size, dtype=bool), np.empty(size, dtype=bool)
        step_buf = np.empty(size, dtype=overshoot.dtype)
        factor = (lambda c: c.view(np.uint8)) if count_.dtype == np.uint8 else (lambda c: c)
        moved = 0
        for block in blocks(values.size):
            n = block.stop - block.start
            x, b, c, o = values[block], bound[block], count_[block], overshoot[block]
            counted, move, step = counted_buf[:n], move_buf[:n], step_buf[:n]
            now = compare(x, b, out=beyond[block])
            np.logical_and(now, was_beyond[block], out=counted)
            np.add(c, 1, out=c)
            np.multiply(c, factor(counted), out=c)  # count + 1 where counted, else 0
            np.subtract(x, b, out=step)
            np.add(o, step, out=step)
            np.multiply(step, counted, out=o)  # over + (w - bound) where counted, else 0
            np.add(o, 0.0, out=o)  # -0.0 (a negative overshoot times 0) -> 0.0
            found = int(np.count_nonzero(np.greater_equal(c, self.count_threshold, out=move)))
            if found:
                index = np.flatnonzero(move)
                b[index] += o[index] / self.count_threshold
                c[index] = 0
                o[index] = 0.0
                moved += found
        # this epoch's flags become last epoch's: a swap with the spare, not a copy
        setattr(self, was_name, flags)
        self._spare_flags = previous
        self._active[key] = None  # (the flat-index path's memory: rescan if it runs)
        return moved

    def _shrink(self, w: torch.Tensor) -> int:
        spare = self._spare_magnitude
        if spare is None or spare.shape != w.shape or spare.device != w.device:
            spare = torch.empty_like(w)
        magnitude = spare
        if all(isinstance(a, np.ndarray) for a in (flat(w), flat(magnitude))):
            return self._shrink_blocked(w, magnitude)
        binary("absolute", array(w), None, array(magnitude))
        shrinking = self._spare(w)
        binary("less", array(magnitude), array(self.previous_magnitude), array(shrinking))
        self._spare_flags = self.was_shrinking  # scratch after count_run_
        self.was_shrinking = count_run_(shrinking, self.was_shrinking, self.shrink_count)
        self._spare_magnitude, self.previous_magnitude = self.previous_magnitude, magnitude
        shrink = binary("greater_equal", array(self.shrink_count), self.count_threshold,
                        array(self._spare(w)))
        shrunk = count(shrink)
        if shrunk:
            if isinstance(shrink, np.ndarray):
                index = np.flatnonzero(shrink)
                factor = np.float32(self.shrink_factor)  # as torch.where's float32 factor
                for bound in (flat(self.upper), flat(self.lower)):
                    bound[index] *= factor
                flat(self.shrink_count)[index] = 0
            else:
                factor = torch.where(shrink, self.shrink_factor, 1.0)
                self.upper.mul_(factor)
                self.lower.mul_(factor)
                self.shrink_count.masked_fill_(shrink, 0)
        return shrunk

    def _shrink_blocked(self, w: torch.Tensor, magnitude: torch.Tensor) -> int:
        """:meth:`_shrink` on the CPU in cache-sized blocks: |w|, the comparison with last
        epoch's, the run counter and the shrink of a block in one visit."""
        flags, previous = self._spare(w), self.was_shrinking
        values, mags, last, now_flags, was, count_, upper, lower = (
            flat(t) for t in (w, magnitude, self.previous_magnitude, flags, previous,
                              self.shrink_count, self.upper, self.lower))
        size = min(BLOCK, values.size)
        counted_buf, move_buf = np.empty(size, dtype=bool), np.empty(size, dtype=bool)
        factor = np.float32(self.shrink_factor)  # as torch.where's float32 factor
        as_factor = (lambda c: c.view(np.uint8)) if count_.dtype == np.uint8 else (lambda c: c)
        shrunk = 0
        for block in blocks(values.size):
            n = block.stop - block.start
            m, c = mags[block], count_[block]
            counted, move = counted_buf[:n], move_buf[:n]
            np.absolute(values[block], out=m)
            now = np.less(m, last[block], out=now_flags[block])
            np.logical_and(now, was[block], out=counted)
            np.add(c, 1, out=c)
            np.multiply(c, as_factor(counted), out=c)
            found = int(np.count_nonzero(np.greater_equal(c, self.count_threshold, out=move)))
            if found:
                index = np.flatnonzero(move)
                upper[block][index] *= factor
                lower[block][index] *= factor
                c[index] = 0
                shrunk += found
        self.was_shrinking, self._spare_flags = flags, previous
        self._spare_magnitude, self.previous_magnitude = self.previous_magnitude, magnitude
        return shrunk

    # -- uses of the ranges -----------------------------------------------------------------
    @torch.no_grad()
    def clip_(self, weight: torch.Tensor) -> int:
        """Clamp ``weight`` into its ranges in place (synaptic constraint); returns how many
        entries were outside."""
        data = weight.data
        values = array(data)
        if not isinstance(values, np.ndarray):
            outside = int(torch.count_nonzero((data > self.upper) | (data < self.lower)))
            if outside:
                torch.clamp(data, min=self.lower, max=self.upper, out=data)
            return outside
        # Blocked on the CPU: the comparisons, the count and the clamp of a block run while
        # it is in cache; a block with no entry outside is not written. The clamp is
        # torch.clamp's min(max(w, lower), upper) (NaN propagating, as torch's).
        values, upper, lower = values.reshape(-1), flat(self.upper), flat(self.lower)
        above = np.empty(min(BLOCK, values.size), dtype=bool)
        below = np.empty_like(above)
        outside = 0
        for block in blocks(values.size):
            x, hi, lo = values[block], upper[block], lower[block]
            out, low = above[:len(x)], below[:len(x)]
            np.greater(x, hi, out=out)
            np.logical_or(out, np.less(x, lo, out=low), out=out)
            found = int(np.count_nonzero(out))
            if found:
                np.minimum(np.maximum(x, lo, out=x), hi, out=x)
                outside += found
        if outside:
            torch.autograd.graph.increment_version(data)  # as torch's in-place clamp would
        return outside

    def width_importance(self, out: torch.Tensor | None = None,
                         mask: torch.Tensor | None = None) -> torch.Tensor:
        """Min-max normalised range width ``N(r+ + |r-|)`` over the whole layer; 0.5 for every
        entry when all widths are equal, as the reference's ``unit()`` returns (so a unit's
        importance is then half its count of kept entries). ``out``: a float buffer of the
        weight's shape to compute into (no layer-sized temporaries); ``mask``: a bool tensor
        of the weight's shape whose False entries are then zeroed (``width * mask``, exact:
        the width is finite and >= 0)."""
        width = torch.empty_like(self.lower) if out is None else out
        values = array(width)
        if not isinstance(values, np.ndarray):
            torch.abs(self.lower, out=width).add_(self.upper)  # == upper + |lower| (commutes)
            lo, hi = torch.aminmax(width)
            width = width.fill_(0.5) if hi <= lo else width.sub_(lo).div_(hi - lo)
            return width if mask is None else width.mul_(mask)
        # Blocked on the CPU (two passes through the cache instead of six over memory):
        # the same float32 operations, so the same bits.
        values, upper, lower = values.reshape(-1), flat(self.upper), flat(self.lower)
        lo, hi = np.float32(np.inf), np.float32(-np.inf)
        parts = blocks(values.size)
        for block in parts:
            x = values[block]
            np.absolute(lower[block], out=x)
            np.add(x, upper[block], out=x)
            lo, hi = np.minimum(lo, x.min()), np.maximum(hi, x.max())  # NaN stays
        kept = None if mask is None else flat(mask)
        for block in parts:
            x = values[block]
            if hi <= lo:
                x.fill(0.5)
            else:
                np.subtract(x, lo, out=x)
                np.divide(x, hi - lo, out=x)
            if kept is not None:
                np.multiply(x, kept[block], out=x)
        return width

    # -- persistence ------------------------------------------------------------------------
    _TENSORS = (
        "upper", "lower", "upper_count", "lower_count", "shrink_count", "upper_overshoot",
        "lower_overshoot", "was_above", "was_below", "was_shrinking", "previous_magnitude",
    )

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name).cpu().clone() for name in self._TENSORS}

    def shrink_(self, rows: torch.Tensor, cols: torch.Tensor | None) -> None:
        """Keep the ranges of the weight's kept ``rows`` and input columns ``cols`` (None:
        all), after the layer shrank while training (docs/COMPACT.md)."""
        for name in self._TENSORS:
            value = getattr(self, name).index_select(0, rows.to(self.upper.device))
            if cols is not None:
                value = value.index_select(1, cols.to(value.device))
            setattr(self, name, value.contiguous())
        self._spare_magnitude = self._spare_flags = self._clip_flags = None
        self._active = {"upper": None, "lower": None}

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
        self._active = {"upper": None, "lower": None}
