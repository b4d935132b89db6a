"""``TimeLoop``: run a single-step spiking model over time, for measuring it (and for running
it like a devprune model).

snnTorch models are usually written for one time step, with the time loop in the user's
training script. ``workload_metrics`` sees one ``forward`` per batch, so such a model would
be measured for a single step. ``TimeLoop(model)`` takes ``[B, T, ...]`` input (the layout of
devprune's event-frame datasets and of NeuroBench's ``SNNTorchModel``), resets the neurons'
state, calls ``model`` once per step and returns the outputs stacked as ``[B, T, ...]``;
``TimeLoop(model, steps=T)`` repeats a static ``[B, ...]`` input T times (direct encoding).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from devprune.kinds import is_spiking_neuron


def reset_states(model: nn.Module) -> None:
    """Reset the hidden state of every spiking neuron of ``model``: snnTorch neurons holding
    their own state (``init_hidden=True``) and SpikingJelly memory modules (``reset()``).
    devprune neurons keep no state between calls and need nothing."""
    for module in model.modules():
        if not is_spiking_neuron(module):
            continue
        if getattr(module, "init_hidden", False) and callable(getattr(module, "reset_mem",
                                                                         None)):
            module.reset_mem()
        elif callable(getattr(module, "reset", None)) and hasattr(module, "_memories"):
            module.reset()


def _first_tensor(output: Any) -> torch.Tensor:
    """The step's output spikes: the tensor itself, or the first of ``(spk, mem)``."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"TimeLoop: a step of the model returned {type(output).__name__}; "
                    "expected a tensor or a (spikes, membrane) tuple")


class TimeLoop(nn.Module):
    """``model`` stepped over the time axis (dim 1) of its input, its state reset first.

    ``steps``: repeat a static input this many times instead of reading a time axis.
    ``reset``: reset the neurons' state before each sequence (default True).
    The output is ``[B, T, ...]``: every step's output (the spikes of ``(spk, mem)``).
    """

    def __init__(self, model: nn.Module, *, steps: int | None = None,
                 reset: bool = True) -> None:
        super().__init__()
        if steps is not None and steps < 1:
            raise ValueError(f"TimeLoop: steps must be >= 1, got {steps}")
        self.model, self.steps, self.reset = model, steps, reset

    @property
    def time_steps(self) -> int | None:
        return self.steps

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.reset:
            reset_states(self.model)
        steps = self.steps if self.steps is not None else inputs.shape[1]
        outputs = []
        for t in range(steps):
            frame = inputs if self.steps is not None else inputs[:, t]
            outputs.append(_first_tensor(self.model(frame)))
        return torch.stack(outputs, dim=1)
