"""The contract every devprune spiking neuron fulfils.

A neuron is a multi-step module: ``forward`` takes the input current of all time steps,
``[T, B, ...]``, and returns spikes of the same shape. The membrane state lives only inside
one call, so nothing leaks from one batch to the next and no ``reset`` call is needed.
Structure discovery and activity recording find neurons through ``isinstance(m, BaseNeuron)``.
"""

from __future__ import annotations

import torch
from torch import nn

from devprune.errors import LayoutError


class BaseNeuron(nn.Module):
    """Abstract multi-step spiking neuron. Subclasses implement :meth:`multi_step`."""

    step_mode = "m"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise LayoutError(
                f"{type(self).__name__} expects multi-step input shaped [T, B, ...]; got "
                f"shape {tuple(x.shape)}. Encode the input over time first "
                "(devprune.snn.encoders)."
            )
        return self.multi_step(x)

    def multi_step(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def is_spiking_neuron(module: nn.Module) -> bool:
    """True for devprune neurons and for the neuron classes of snnTorch and SpikingJelly.

    Third-party classes are recognised by their base-class names, so neither package has to
    be importable for this check.
    """
    if isinstance(module, BaseNeuron):
        return True
    names = {f"{c.__module__}.{c.__name__}" for c in type(module).__mro__}
    return any(
        (n.startswith("snntorch.") and n.endswith(".SpikingNeuron"))
        or (n.startswith("spikingjelly.") and n.endswith(".BaseNode"))
        for n in names
    )
