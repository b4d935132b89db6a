"""Time-side pruning: learn to simulate fewer time steps (devprune's extension, not the papers').

The released DPAP code prunes only in space; its "spatio-temporal" importance is the spike
trace over all T steps (docs/METHODS.md#paper-vs-code). This module adds the time side as an
*option* of the DPAP pruner, in DPAP's own "use it or lose it" form
(docs/NEUROMORPHIC.md#time-side-decision):

* during training, the output layer's spikes ``o[t]`` of every batch give the cumulative
  readouts ``r_t = mean(o[1..t])`` and the rate-MSE loss ``L_t`` of each (``L_0``: nothing
  simulated, the loss of an all-zero readout);
* the contribution of the last simulated step ``T_a`` is its loss gain relative to the mean
  gain of all steps, ``u = (L_{T_a-1} - L_{T_a}) / ((L_0 - L_{T_a}) / T_a)`` (1 = as useful as
  an average step, 0 = no use, negative = harmful);
* at each pruning step a scalar reserve follows ``P <- gamma * P + d(u) * g(e)`` with DPAP's
  ``d`` and ``g``; when ``P < 0`` the model simulates one step fewer (never below
  ``min_time_steps``) and ``P`` starts again from its initial value.

The model must expose a writable ``time_steps`` (every devprune zoo SNN does: its encoder
then keeps the first ``T_a`` frames or draws ``T_a`` rate-coded steps). The loss sums are
sums over samples, so a data-parallel run can all-reduce them like DPAP's other statistics.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from devprune.errors import CheckpointError, ConfigError, LayoutError
from devprune.pruning.importance import reserve_increment
from devprune.structure import ModelStructure


# --------------------------------------------------------------------------------------------
# The arithmetic (pinned by tests on hand-computed values)
# --------------------------------------------------------------------------------------------
def cumulative_rate_losses(spikes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample rate-MSE of the readout after 0, 1, ..., T steps: ``[T + 1, B]``.

    ``spikes`` is the output layer's ``[T, B, K]``; the readout after t steps is
    ``sum(o[1..t]) / t`` and its loss ``mean_k (r_k - onehot_k)^2``; row 0 is the loss of
    the empty readout (``1 / K`` for a one-hot target).
    """
    steps, _, classes = spikes.shape
    one_hot = F.one_hot(targets.long(), classes).to(spikes.dtype)
    counts = torch.arange(1, steps + 1, dtype=spikes.dtype, device=spikes.device)
    rates = spikes.cumsum(0) / counts.view(-1, 1, 1)
    per_step = (rates - one_hot).pow(2).mean(2)
    empty = one_hot.pow(2).mean(1, keepdim=True).T
    return torch.cat([empty, per_step])


def last_step_contribution(losses: torch.Tensor) -> float | None:
    """``u`` of the last step from mean losses ``[L_0, ..., L_T]`` (None: no signal yet).

    The last step's loss gain divided by the mean gain per step; None when the readout is
    no better than the empty one (an untrained network carries no evidence about time).
    """
    steps = losses.numel() - 1
    if steps < 1:
        raise ValueError("need the losses of at least one simulated step")
    mean_gain = float(losses[0] - losses[-1]) / steps
    if mean_gain <= 0:
        return None
    return float(losses[-2] - losses[-1]) / mean_gain


# --------------------------------------------------------------------------------------------
# The reserve over the simulated length
# --------------------------------------------------------------------------------------------
def _output_module(model: nn.Module, structure: ModelStructure) -> nn.Module:
    outputs = [la for la in structure.layers if la.is_output]
    if not outputs:
        raise ConfigError("prune.dpap.temporal: found no output layer in the model to read "
                          "per-step output spikes from; turn prune.dpap.temporal off")
    layer = outputs[-1]
    name = layer.post_name or layer.name
    return dict(model.named_modules())[name]


class TimeStepReserve:
    """Learns the simulated length ``T_a`` of ``model`` (see the module docstring)."""

    def __init__(self, model: nn.Module, structure: ModelStructure, *, offset: float,
                 bonus: float, reserve: float, min_time_steps: int) -> None:
        steps = getattr(model, "time_steps", None)
        if not isinstance(steps, int):
            raise ConfigError(
                f"prune.dpap.temporal: the model ({type(model).__name__}) has no integer "
                "`time_steps` attribute to shorten; use a devprune zoo SNN or give the model a "
                "settable `time_steps` property, or turn prune.dpap.temporal off"
            )
        if not 1 <= min_time_steps <= steps:
            raise ConfigError(f"prune.dpap.min_time_steps: must be in [1, {steps}] (the "
                              f"model's T), got {min_time_steps}")
        self.model = model
        self.offset, self.bonus, self.initial = offset, bonus, reserve
        self.min_time_steps = min_time_steps
        self.full_time_steps = steps
        self.reserve = reserve
        self.last_contribution: float | None = None
        self.recording = False
        self._spikes: torch.Tensor | None = None
        device = next(iter(model.parameters())).device
        self._new_window(device)
        self._handle = _output_module(model, structure).register_forward_hook(self._hook)

    @property
    def time_steps(self) -> int:
        return int(self.model.time_steps)

    def _new_window(self, device: torch.device) -> None:
        # Cumulative sums since T last changed, and their value at the last step (the mark).
        self.loss_sum = torch.zeros(self.time_steps + 1, dtype=torch.float64, device=device)
        self.samples = torch.zeros((), dtype=torch.float64, device=device)
        self.loss_mark = torch.zeros_like(self.loss_sum)
        self.samples_mark = torch.zeros_like(self.samples)

    @torch.compiler.disable  # eager under torch.compile, like the activity hooks
    def _hook(self, module: nn.Module, _inputs: tuple, output: Any) -> None:
        if self.recording and module.training:
            spikes = output[0] if isinstance(output, (tuple, list)) else output
            self._spikes = spikes.detach()

    # -- per batch --------------------------------------------------------------------------
    def start(self) -> None:
        if self._spikes is not None:
            raise ConfigError(
                "prune.dpap.temporal: a training batch ended without pruner.on_forward("
                "outputs, labels); a hand-written loop must call it after the forward pass "
                "(devprune's runner does), or turn prune.dpap.temporal off"
            )
        self.recording = True

    @torch.no_grad()
    def observe(self, targets: torch.Tensor) -> None:
        """Add the batch's per-step losses (call after the forward pass of a training batch)."""
        self.recording = False
        spikes, self._spikes = self._spikes, None
        if spikes is None:
            return
        if spikes.dim() != 3 or spikes.shape[0] != self.time_steps:
            raise LayoutError(
                f"prune.dpap.temporal: expected the output layer's spikes as [T={self.time_steps}"
                f", B, classes] from a multi-step model, got {tuple(spikes.shape)}; time-side "
                "pruning needs a multi-step (step_mode 'm') SNN"
            )
        losses = cumulative_rate_losses(spikes.to(torch.float64), targets)
        self.loss_sum.add_(losses.sum(1))
        self.samples.add_(losses.shape[1])

    # -- per pruning step -------------------------------------------------------------------
    def step(self, factor: float, gamma: float) -> dict[str, Any]:
        """Update the reserve from the window's evidence; maybe drop the last step."""
        samples = float(self.samples - self.samples_mark)
        event: dict[str, Any] = {"time_steps": self.time_steps, "dropped": False,
                                 "contribution": None, "reserve": self.reserve}
        if samples == 0 or self.time_steps <= self.min_time_steps:
            return event
        losses = (self.loss_sum - self.loss_mark) / samples
        u = last_step_contribution(losses)
        self.loss_mark.copy_(self.loss_sum)
        self.samples_mark.copy_(self.samples)
        event["contribution"] = self.last_contribution = u
        if u is None:
            return event
        increment = float(reserve_increment(torch.tensor(u), self.offset, self.bonus))
        self.reserve = gamma * self.reserve + increment * factor
        event["reserve"] = self.reserve
        if self.reserve < 0:
            self.model.time_steps = self.time_steps - 1
            self.reserve = self.initial
            self._new_window(self.loss_sum.device)
            event.update(time_steps=self.time_steps, dropped=True)
        return event

    # -- state ------------------------------------------------------------------------------
    def statistics(self) -> dict[str, torch.Tensor]:
        return {"temporal.loss_sum": self.loss_sum, "temporal.samples": self.samples}

    def state_dict(self) -> dict[str, Any]:
        return {"time_steps": self.time_steps, "full_time_steps": self.full_time_steps,
                "reserve": self.reserve, "last_contribution": self.last_contribution,
                "loss_sum": self.loss_sum.cpu().clone(), "samples": self.samples.cpu().clone(),
                "loss_mark": self.loss_mark.cpu().clone(),
                "samples_mark": self.samples_mark.cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["full_time_steps"]) != self.full_time_steps:
            raise CheckpointError(
                f"checkpoint's time-side pruning started from T={state['full_time_steps']} but "
                f"this model has T={self.full_time_steps}; resume with the run's model.time_steps"
            )
        self.model.time_steps = int(state["time_steps"])
        self.reserve = float(state["reserve"])
        self.last_contribution = state["last_contribution"]
        device = self.loss_sum.device
        for key in ("loss_sum", "samples", "loss_mark", "samples_mark"):
            setattr(self, key, state[key].to(device).clone())

    def remove(self) -> None:
        self._handle.remove()
