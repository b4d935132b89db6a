"""SD-SNN's synaptic regeneration: persistence counters over pruned entries
(docs/SDSNN.md#sdsnn-regrowth).

A candidate (a pruned synapse of a linear layer, or a whole pruned kernel of a conv layer)
whose signal exceeds the layer's p(e)-th percentile this epoch *and* exceeded it at the
previous epoch gets its count incremented; any other epoch resets it. A count strictly above
``max_count`` restores the candidate (the reference's ``> C_g``), so restoring takes
``max_count + 2`` consecutive epochs above the percentile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from devprune.cpu_ops import BLOCK, any_true, array, binary, blocks, flat, nonzero
from devprune.pruning.importance import percentile
from devprune.pruning.spine_ranges import count_run_, counter_dtype
from devprune.snn.layers import repeated_over_time
from devprune.structure import ModelStructure, PrunableLayer


def regrowth_percentile(epoch: int, start: int, p0: float, growth: float, cap: float) -> float:
    """``p(e) = min(cap, p0 + growth^(e - start))``; ``start`` is the first regrowth epoch
    (2C+1: the reference's literal 37)."""
    try:
        value = p0 + growth ** (epoch - start)
    except OverflowError:  # growth^k overflows long after reaching the cap
        return cap
    return min(cap, value)


def candidate_signal(values: torch.Tensor, signal: str, kernels: bool,
                     out: torch.Tensor | None = None) -> torch.Tensor:
    """The per-candidate signal: per weight for linear layers, summed over each kernel of a
    conv layer (``[out, in]``). ``weight`` keeps the sign, as the reference does (only
    positive values can qualify, docs/SDSNN.md#sdsnn-signed-regrowth); ``magnitude`` and
    ``gradient`` are |.|.

    ``values`` is the weight (``weight``/``magnitude``) or the epoch's summed gradient;
    ``out``: a float buffer shaped like ``values`` for |.| (no layer-sized temporary)."""
    if signal == "weight":
        per_entry = values
    elif out is not None and out.shape == values.shape and out.dtype == values.dtype:
        per_entry = out
        binary("absolute", array(values), None, array(out))
    else:
        per_entry = values.abs()
    return per_entry.flatten(2).sum(2) if kernels and per_entry.dim() > 2 else per_entry


class RegrowthTracker:
    """Counters of one layer's regeneration candidates."""

    def __init__(
        self, shape: torch.Size | tuple[int, ...], device: torch.device, max_count: int
    ) -> None:
        self.count = torch.zeros(shape, dtype=counter_dtype(max_count + 1), device=device)
        self.was_above = torch.zeros(shape, dtype=torch.bool, device=device)
        # Scratch flags (not state): this step's "above" flags are written here and swapped
        # in as ``was_above``; the restore flags of the last step.
        self._spare = torch.empty_like(self.was_above)
        self._restore = torch.empty_like(self.was_above)

    @torch.no_grad()
    def step(
        self, signal: torch.Tensor, candidates: torch.Tensor, q: float, max_count: int
    ) -> tuple[torch.Tensor, float]:
        """One epoch: returns (bool tensor of candidates to restore, the percentile value).
        The restore tensor is a buffer of the tracker, valid until its next step.

        The percentile is taken over ALL entries of ``signal`` (kept ones included)."""
        signal = signal.detach().float()
        threshold = float(percentile(signal, q))  # a float32 value: compared exactly
        values, above = array(signal), array(self._spare)
        arrays = (values, above, array(candidates), array(self.was_above), array(self.count))
        if all(isinstance(a, np.ndarray) for a in arrays):
            self._step_blocked(np.float32(threshold), *(a.reshape(-1) for a in arrays),
                               max_count)
            return self._restore, threshold
        if isinstance(values, np.ndarray) and isinstance(above, np.ndarray):
            np.greater(values, np.float32(threshold), out=above)
        else:
            torch.gt(signal, threshold, out=self._spare)
        binary("logical_and", above, array(candidates), above)
        previous = self.was_above
        self.was_above = count_run_(self._spare, previous, self.count)
        self._spare = previous  # scratch now
        restore = binary("greater", array(self.count), max_count, array(self._restore))
        if any_true(restore):
            index = nonzero(flat(self._restore))
            flat(self.count)[index] = 0
            # A restored entry starts from scratch if it is ever pruned again.
            flat(self.was_above)[index] = False
        return self._restore, threshold

    def _step_blocked(self, threshold: np.float32, values: np.ndarray, above: np.ndarray,
                      candidates: np.ndarray, was_above: np.ndarray, count_: np.ndarray,
                      max_count: int) -> None:
        """:meth:`step` after the percentile, on the CPU in cache-sized blocks: the
        comparison, the run count and the restore test of a block in one visit."""
        restore = flat(self._restore)
        counted_buf = np.empty(min(BLOCK, values.size), dtype=bool)
        as_factor = (lambda c: c.view(np.uint8)) if count_.dtype == np.uint8 else (lambda c: c)
        for block in blocks(values.size):
            counted, c = counted_buf[:block.stop - block.start], count_[block]
            now = np.greater(values[block], threshold, out=above[block])
            np.logical_and(now, candidates[block], out=now)
            np.logical_and(now, was_above[block], out=counted)
            np.add(c, 1, out=c)
            np.multiply(c, as_factor(counted), out=c)
            if np.count_nonzero(np.greater(c, max_count, out=restore[block])):
                index = np.flatnonzero(restore[block])
                c[index] = 0
                now[index] = False  # a restored entry starts from scratch if pruned again
        self.was_above, self._spare = self._spare, self.was_above

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


# A regrown weight starts at this fraction of the layer's mean |w| (see regrown_start_values).
REGROWN_START_FRACTION = 0.1


@torch.no_grad()
def regrown_start_values(weight: torch.Tensor, restore: torch.Tensor, grad_sum: torch.Tensor,
                         kept: torch.Tensor) -> int:
    """Hard masks: set the restored entries of ``weight`` (zeros until now) to
    ``-sign(summed gradient) * 0.1 * mean |w|`` of the layer's other kept entries: a small
    step in the direction the loss asked for over the period. Not zero: a regrown synapse
    left at zero on an otherwise silent neuron would leave its membrane at rest, where a
    windowed surrogate passes no gradient, so it could never move. Small: a revived neuron
    should start below threshold and grow into the network by learning (at a typical
    weight's full size, ~100k regrown synapses in one step cost snn-mlp about a point).
    Returns how many entries were set."""
    others = kept & ~restore
    scale = weight[others].abs().mean() if bool(others.any()) else weight.new_tensor(0.0)
    scale = scale * REGROWN_START_FRACTION
    weight[restore] = -torch.sign(grad_sum[restore]).to(weight.dtype) * scale
    return int(restore.sum())


class DeadUnitGradient:
    """The gradient the incoming synapses of a pruned (dead) linear unit would get if the unit
    passed gradient straight through to the outgoing weights it had when it was pruned.

    Hard masks zero a dead unit's incoming row, bias and outgoing columns, so its synapses'
    true dense gradient is exactly zero (and a windowed surrogate is closed at a resting
    membrane): the signal regrowth needs never appears. This keeps a copy of each dead unit's
    outgoing columns (``save``) and, while ``active``, adds per batch
    ``(delta_consumer @ W_out_saved)^T @ x`` -- the consumer's output gradient sent back
    through the saved columns, times the layer's input -- into ``sums`` (signed, like the
    gradient sums of live entries). Only layers whose consumers are all linear layers reading
    their units one column each are covered; others keep the plain gradient.
    """

    def __init__(self, model: torch.nn.Module, structure: ModelStructure,
                 layers: Sequence[PrunableLayer]) -> None:
        self.consumers: dict[str, list[PrunableLayer]] = {}
        for layer in layers:
            found = structure.consumers(layer.name)
            if layer.kind == "linear" and found and all(
                    c.kind == "linear" and p.block == 1 and c.fan_in == layer.num_units
                    for c, p in found):
                self.consumers[layer.name] = [c for c, _ in found]
        self.saved = {name: {c.name: torch.zeros_like(c.weight, dtype=torch.float32)
                             for c in cons} for name, cons in self.consumers.items()}
        self.sums: dict[str, torch.Tensor] = {}
        self.active = False
        self._inputs: dict[str, list[torch.Tensor]] = {name: [] for name in self.consumers}
        self._handles: list[Any] = []
        modules = dict(model.named_modules())
        for name, cons in self.consumers.items():
            self._handles.append(modules[name].register_forward_hook(self._input_hook(name)))
            for consumer in cons:
                self._handles.append(modules[consumer.name].register_forward_hook(
                    self._output_hook(name, consumer.name)))

    def _input_hook(self, name: str) -> Callable[..., None]:
        @torch.compiler.disable
        def hook(module: torch.nn.Module, inputs: tuple, _output: Any) -> None:
            if self.active and module.training:
                self._inputs[name].append(inputs[0].detach())
        return hook

    def _output_hook(self, name: str, consumer: str) -> Callable[..., None]:
        @torch.compiler.disable
        def hook(module: torch.nn.Module, _inputs: tuple, output: Any) -> None:
            if self.active and module.training and torch.is_tensor(output) \
                    and output.requires_grad and self._inputs[name]:
                x = self._inputs[name][-1]  # single-step loops: backward runs in reverse
                output.register_hook(lambda grad: self._accumulate(name, consumer, x, grad))
        return hook

    @torch.no_grad()
    def _accumulate(self, name: str, consumer: str, x: torch.Tensor,
                    grad: torch.Tensor) -> None:
        saved = self.saved[name][consumer]
        # Only units with a saved column get anything (a live unit's is zero): the product
        # runs over them alone, a few of the layer's units while pruning starts.
        units = saved.ne(0).any(0).nonzero().flatten()
        if units.numel() == 0:
            return
        if repeated_over_time(x) and grad.shape[:2] == x.shape[:2]:
            # the input is one step's, repeated T times (a direct encoder): sum the T
            # gradients first, T times less work for the same sum
            delta, inputs = grad.float().sum(0), x[0].float()
        else:
            delta, inputs = grad.float(), x.float()
        delta, inputs = delta.reshape(-1, delta.shape[-1]), inputs.reshape(-1, x.shape[-1])
        if delta.shape[0] != inputs.shape[0]:
            return  # not a plain chain (the consumer saw another batch layout): no signal
        through = delta @ saved.index_select(1, units)  # [M, units with a saved column]
        if name not in self.sums:
            self.sums[name] = torch.zeros(saved.shape[1], inputs.shape[1], device=inputs.device)
        self.sums[name].index_add_(0, units, through.T @ inputs)

    def start_batch(self) -> None:
        for stack in self._inputs.values():
            stack.clear()

    def reset(self) -> None:
        """Forget the period's sums (after each step)."""
        self.sums = {}
        self.start_batch()

    @torch.no_grad()
    def save(self, name: str, units: torch.Tensor, structure: ModelStructure) -> None:
        """Keep the outgoing columns of ``units`` (bool) of ``name`` before they are zeroed."""
        for consumer, saved in self.saved.get(name, {}).items():
            weight = structure[consumer].weight.detach()
            saved[:, units] = weight[:, units].float()

    @torch.no_grad()
    def restore(self, name: str, units: torch.Tensor, structure: ModelStructure) -> None:
        """Give revived ``units`` (bool) their saved outgoing columns back."""
        for consumer, saved in self.saved.get(name, {}).items():
            weight = structure[consumer].weight
            weight.data[:, units] = saved[:, units].to(weight.dtype)
            saved[:, units] = 0.0

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: {c: t.cpu().clone() for c, t in cons.items()}
                for name, cons in self.saved.items()}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        for name, cons in self.saved.items():
            for consumer, tensor in cons.items():
                tensor.copy_(state[name][consumer])
