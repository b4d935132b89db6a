"""Recording pre- and postsynaptic activity traces of chosen layers with forward hooks.

For every recorded layer the recorder keeps, per training batch, one trace readout per sample
and unit (docs/DPAP.md#dpap-trace): ``pre`` = the layer's input (``[B, in]``: input features,
or input channels summed over space) and ``post`` = the output of the module that carries the
layer's postsynaptic activity (``[B, out]``): the spiking neuron after it for SNNs, and for
ANNs the layer's own output (``ann_activity="pre"``, the reference) or the activation after it
(``"post"``).

Two calling conventions are handled:

* multi-step modules (``step_mode == "m"``: devprune layers and neurons, SpikingJelly in
  multi-step mode) see ``[T, B, ...]`` in one call; the trace readout is one weighted sum over
  time (:func:`devprune.pruning.importance.readout_weights`);
* single-step modules (``nn.Linear`` inside an snnTorch time loop, ANN layers) are called once
  per step; the trace ``x = delta * x + o`` is advanced at every call and read out at
  :meth:`ActivityRecorder.finish`. An ANN is the case T = 1.

Only reductions to ``[B, units]`` are kept, on the model's device, without gradients.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from devprune.pruning.importance import readout_weights, trace_readout, unit_activity
from devprune.snn.base import is_spiking_neuron
from devprune.snn.layers import is_multi_step
from devprune.structure import ModelStructure, PrunableLayer

ANN_ACTIVITY = ("pre", "post")


@dataclass
class _Trace:
    """The running trace of one tensor stream over the calls of one batch."""

    delta: float
    readout: str
    value: torch.Tensor | None = None  # finished readout of a multi-step call
    trace: torch.Tensor | None = None  # single-step: x[t]
    trace_sum: torch.Tensor | None = None  # single-step, mean readout: sum_t x[t]
    steps: int = 0

    def add_multi_step(self, x: torch.Tensor) -> None:
        self.value = trace_readout(x, self.delta, self.readout)

    def add_single_step(self, x: torch.Tensor) -> None:
        o = unit_activity(x)
        self.trace = o.clone() if self.trace is None else self.trace.mul_(self.delta).add_(o)
        if self.readout == "mean":
            self.trace_sum = self.trace.clone() if self.trace_sum is None else (
                self.trace_sum.add_(self.trace)
            )
        self.steps += 1

    def result(self) -> torch.Tensor | None:
        if self.value is not None:
            return self.value
        if self.trace is None:
            return None
        total = self.trace if self.readout == "last" else self.trace_sum
        return total / self.steps


@dataclass
class LayerTaps:
    """Which modules give one layer's presynaptic input and postsynaptic output."""

    layer: str
    pre_module: str
    post_module: str
    pre: _Trace | None = None
    post: _Trace | None = None
    handles: list[Any] = field(default_factory=list)


def _first_tensor(value: Any) -> torch.Tensor:
    """Module outputs may be tuples (snnTorch neurons return ``(spikes, membrane)``)."""
    if isinstance(value, (tuple, list)):
        value = value[0]
    if not torch.is_tensor(value):
        raise TypeError(f"expected a tensor activity, got {type(value).__name__}")
    return value


def post_module_name(
    structure: ModelStructure, layer: PrunableLayer, ann_activity: str = "pre"
) -> str:
    """The module whose output is the layer's postsynaptic activity (see module docstring)."""
    if ann_activity not in ANN_ACTIVITY:
        raise ValueError(f"ann_activity must be one of {ANN_ACTIVITY}, got {ann_activity!r}")
    post = layer.post_name
    if post is None:
        return layer.name
    if is_spiking_neuron(structure.modules[post]):
        return post
    return layer.name if ann_activity == "pre" else post


class ActivityRecorder:
    """Forward hooks that collect per-batch trace readouts of the chosen layers."""

    def __init__(
        self,
        model: nn.Module,
        structure: ModelStructure,
        layers: Iterable[PrunableLayer],
        *,
        delta: float = 0.5,
        readout: str = "last",
        ann_activity: str = "pre",
    ) -> None:
        readout_weights(1, delta, readout)  # validates ``readout`` early
        self.model = model
        self.delta = delta
        self.readout = readout
        self.recording = False
        # Multi-step readouts of this batch by input tensor: a layer's output spikes are the
        # next layer's input, so the same [T, B, ...] tensor reaches a post and a pre hook;
        # it is read out once. The tensor is held (no id reuse) and its version checked.
        self._readouts: dict[int, tuple[torch.Tensor, int, torch.Tensor]] = {}
        self.taps = [
            LayerTaps(la.name, la.name, post_module_name(structure, la, ann_activity))
            for la in layers
        ]
        modules = dict(model.named_modules())
        for tap in self.taps:
            for side, module in (("pre", tap.pre_module), ("post", tap.post_module)):
                tap.handles.append(modules[module].register_forward_hook(self._hook(tap, side)))

    # -- hooks ------------------------------------------------------------------------------
    # Hooks run eagerly under torch.compile: tracing them would only add graph breaks and
    # recompilations (their bookkeeping state changes every batch).
    def _hook(self, tap: LayerTaps, side: str):
        """The forward hook feeding ``tap.pre`` (the module's input) or ``tap.post`` (its
        output), by ``side``."""
        take_input = side == "pre"

        @torch.compiler.disable
        def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
            if self.recording and module.training:
                x = _first_tensor(inputs if take_input else output)
                setattr(tap, side, self._add(getattr(tap, side), module, x))

        return hook

    def _add(self, trace: _Trace | None, module: nn.Module, x: torch.Tensor) -> _Trace:
        trace = trace or _Trace(self.delta, self.readout)
        with torch.no_grad():
            if is_multi_step(module):
                hit = self._readouts.get(id(x))
                if hit is not None and hit[0] is x and hit[1] == x._version:
                    trace.value = hit[2]
                else:
                    trace.add_multi_step(x.detach())
                    self._readouts[id(x)] = (x, x._version, trace.value)
            else:
                trace.add_single_step(x.detach())
        return trace

    # -- batch protocol ---------------------------------------------------------------------
    def start(self) -> None:
        """Begin a batch: forget any partial traces and record training forwards."""
        for tap in self.taps:
            tap.pre = tap.post = None
        self._readouts.clear()
        self.recording = True

    def finish(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """End the batch: ``{layer: (pre [B, in], post [B, out])}`` for layers seen."""
        self.recording = False
        self._readouts.clear()
        result = {}
        for tap in self.taps:
            pre = tap.pre.result() if tap.pre is not None else None
            post = tap.post.result() if tap.post is not None else None
            if pre is not None and post is not None:
                result[tap.layer] = (pre, post)
            tap.pre = tap.post = None
        return result

    def remove(self) -> None:
        """Detach every hook from the model."""
        for tap in self.taps:
            for handle in tap.handles:
                handle.remove()
            tap.handles.clear()
        self.recording = False
        self._readouts.clear()
