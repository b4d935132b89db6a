"""Neuron-side workload: ``MembraneUpdates`` and ``NeuronOperations`` (NeuroBench names).

NeuroBench 2.3.0 defines, per forward pass (one batch) and spiking layer: every neuron's
membrane counts as updated at the first step; at each later step a neuron counts when its
membrane after the step differs from before it (``count_nonzero(pre - post)``).
``MembraneUpdates`` is the total per sample. ``NeuronOperations`` multiplies the updates by
the operations one update costs (``Effective``) and, for ``Dense``, every neuron at every
step by the same cost.

Costs per update: NeuroBench's table for snnTorch neurons (Leaky 4, Synaptic 6/8 for
subtract/zero reset, Lapicque 11, Alpha 18/24). devprune's neurons all run snnTorch Leaky's
update (scale and add the input, leak, threshold, reset), so they cost 4.

Membranes are read without touching the model: devprune neurons (``MembraneNeuron``) are
replayed from their recorded input current with their own ``charge``/``reset``, which is the
computation their ``forward`` does; snnTorch neurons are read from ``layer.mem`` before and
after each call, as NeuroBench does; SpikingJelly ``LIFNode``/``ParametricLIFNode``/``IFNode``
are replayed step by step from their state at the call (``single_step_forward``), then
left in the state the call left.
Other neurons are listed under ``membranes`` with ``counted: False``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from devprune.kinds import SPIKINGJELLY_NODES, is_spiking_neuron, neuron_library
from devprune.snn.neurons import PLIF, MembraneNeuron

SNNTORCH_COSTS = {
    "Leaky": {"subtract": 4, "zero": 4},
    "Synaptic": {"subtract": 6, "zero": 8},
    "Lapicque": {"subtract": 11, "zero": 11},
    "Alpha": {"subtract": 18, "zero": 24},
}
DEVPRUNE_COST = 4  # snnTorch Leaky's update; see the module docstring
# kinds.SPIKINGJELLY_NODES (update as snnTorch Leaky's, up to an input scale) cost 4 too


def _memories(module: nn.Module) -> dict[str, Any]:
    """A copy of a SpikingJelly node's state (its ``_memories``)."""
    return {k: v.detach().clone() if isinstance(v, torch.Tensor) else v
            for k, v in module._memories.items()}


def replay_membrane_updates(neuron: MembraneNeuron, x: torch.Tensor) -> tuple[int, int]:
    """(updates, neuron-steps) of one multi-step call of ``neuron`` on input ``x`` [T, ...]."""
    steps = x.unbind(0)
    u = neuron.initial_membrane(steps[0])
    if isinstance(neuron, PLIF):
        leak = torch.sigmoid(neuron.w.detach()).to(x.dtype)

        def charge(v: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
            return torch.lerp(v, x_t, leak)
    else:
        charge = neuron.charge
    updates = 0
    for t, x_t in enumerate(steps):
        before = u
        u = charge(u, x_t)
        s = (u - neuron.threshold > 0).to(u.dtype)
        u = neuron.reset(u, s)
        updates += u.numel() if t == 0 else int(torch.count_nonzero(u - before))
    return updates, x.numel()


class _Probe:
    """Per-layer hooks; totals over all forward passes."""

    def __init__(self, name: str, module: nn.Module) -> None:
        self.name, self.module = name, module
        self.updates = 0
        self.neuron_steps = 0
        self.first_call = True
        self.pre: torch.Tensor | None = None
        self.twin_state: dict[str, Any] = {}
        self.handles: list[Any] = []
        if isinstance(module, MembraneNeuron):
            self.kind, self.cost = type(module).__name__, DEVPRUNE_COST
            self.handles.append(module.register_forward_hook(self._devprune))
        elif (neuron_library(module) == "spikingjelly"
              and type(module).__name__ in SPIKINGJELLY_NODES):
            self.kind, self.cost = type(module).__name__, DEVPRUNE_COST
            self.handles.append(module.register_forward_pre_hook(self._spikingjelly_pre))
            self.handles.append(module.register_forward_hook(self._spikingjelly_post))
        elif neuron_library(module) == "snntorch" and type(module).__name__ in SNNTORCH_COSTS:
            mechanism = getattr(module, "_reset_mechanism", "subtract")
            self.kind = type(module).__name__
            self.cost = SNNTORCH_COSTS[self.kind].get(mechanism, SNNTORCH_COSTS[self.kind]
                                                     ["subtract"])
            self.handles.append(module.register_forward_pre_hook(self._snntorch_pre))
            self.handles.append(module.register_forward_hook(self._snntorch_post))
        else:
            self.kind, self.cost = type(module).__name__, None

    @property
    def counted(self) -> bool:
        return self.cost is not None

    def new_pass(self) -> None:
        self.first_call = True

    def _devprune(self, module: nn.Module, inputs: tuple, _out: Any) -> None:
        with torch.no_grad():
            updates, steps = replay_membrane_updates(module, inputs[0])
        self.updates += updates
        self.neuron_steps += steps

    def _spikingjelly_pre(self, module: nn.Module, _inputs: tuple) -> None:
        self.twin_state = _memories(module)  # the node's state at this call

    def _spikingjelly_post(self, module: nn.Module, inputs: tuple, _out: Any) -> None:
        """Replay the call step by step from the saved state (``single_step_forward``, no
        hooks), then put back the state the call left."""
        x, after_call = inputs[0], _memories(module)
        steps = x.unbind(0) if getattr(module, "step_mode", "s") == "m" else (x,)
        mode = module.step_mode
        module._memories.update(self.twin_state)
        module.step_mode = "s"
        try:
            with torch.no_grad():
                for x_t in steps:
                    before = module.v
                    before = before.clone() if isinstance(before, torch.Tensor) else None
                    module.single_step_forward(x_t)
                    after = module.v.detach()
                    if self.first_call or before is None or before.shape != after.shape:
                        self.updates += after.numel()
                    else:
                        self.updates += int(torch.count_nonzero(before - after))
                    self.first_call = False
                    self.neuron_steps += after.numel()
        finally:
            module.step_mode = mode
            module._memories.update(after_call)
            self.twin_state = {}

    def _snntorch_pre(self, module: nn.Module, _inputs: tuple) -> None:
        mem = getattr(module, "mem", None)
        self.pre = mem.detach().clone() if isinstance(mem, torch.Tensor) else None

    def _snntorch_post(self, module: nn.Module, _inputs: tuple, _out: Any) -> None:
        post = getattr(module, "mem", None)
        if not isinstance(post, torch.Tensor):
            return
        post = post.detach()
        if self.first_call or self.pre is None or self.pre.shape != post.shape:
            self.updates += post.numel()
        else:
            self.updates += int(torch.count_nonzero(self.pre - post))
        self.first_call = False
        self.neuron_steps += post.numel()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


class MembraneProbes:
    """Context manager hooking every spiking neuron of ``model``; call :meth:`new_pass`
    before each forward pass and :meth:`summary` with the number of samples at the end."""

    def __init__(self, model: nn.Module) -> None:
        self.probes = [_Probe(n, m) for n, m in model.named_modules() if is_spiking_neuron(m)]

    def __enter__(self) -> MembraneProbes:
        return self

    def __exit__(self, *_exc: object) -> None:
        for probe in self.probes:
            probe.remove()

    def new_pass(self) -> None:
        for probe in self.probes:
            probe.new_pass()

    def summary(self, samples: int) -> dict[str, Any]:
        per = max(samples, 1)
        layers = {}
        for p in self.probes:
            layers[p.name] = {
                "kind": p.kind, "counted": p.counted, "ops_per_update": p.cost,
                "MembraneUpdates": p.updates / per if p.counted else None,
                "NeuronOperations": {"Effective": p.updates * p.cost / per,
                                     "Dense": p.neuron_steps * p.cost / per}
                if p.counted else None,
            }
        counted = [p for p in self.probes if p.counted]
        return {
            "MembraneUpdates": sum(p.updates for p in counted) / per,
            "NeuronOperations": {
                "Effective": sum(p.updates * p.cost for p in counted) / per,
                "Dense": sum(p.neuron_steps * p.cost for p in counted) / per,
            },
            "membranes": layers,
        }


@torch.no_grad()
def membrane_metrics(model: nn.Module, batches: Iterable[Any], *,
                     max_batches: int | None = None, device: torch.device | str | None = None,
                     seed: int = 0) -> dict[str, Any]:
    """``MembraneUpdates`` and ``NeuronOperations`` per sample (eval mode, seeded encoders).

    ``workload_metrics`` reports the same keys from its own pass; this runs only the neuron
    side. ``batches`` yields inputs or ``(inputs, targets)``; samples are counted along dim 0
    of the input. Returns ``{"MembraneUpdates", "NeuronOperations": {"Effective", "Dense"},
    "membranes": {name: {"kind", "counted", "MembraneUpdates", "NeuronOperations", ...}},
    "samples"}``.
    """
    was_training = model.training
    model.eval()
    samples = 0
    try:
        with torch.random.fork_rng(devices=[]), MembraneProbes(model) as probes:
            torch.manual_seed(seed)
            for i, batch in enumerate(batches):
                if max_batches is not None and i >= max_batches:
                    break
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                if device is not None:
                    x = x.to(device)
                probes.new_pass()
                model(x)
                samples += int(x.shape[0])
            result = probes.summary(samples)
    finally:
        model.train(was_training)
    return {**result, "samples": samples}
