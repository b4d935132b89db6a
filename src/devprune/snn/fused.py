"""A LIF's training loop over T as one autograd Function, with autograd's own bits.

The differentiable loop (:meth:`~devprune.snn.neurons.MembraneNeuron.run_differentiable`)
records per step a charge, a ``u - threshold``, the surrogate Function with its bool->float
spike and a reset, and ``stack``\\ s the T spike tensors at the end; autograd then walks one
node per op back. For the STBP LIF and the BrainCog LIF (their charges: :class:`Charge`)
with a hard reset to 0 and a surrogate with a fixed parameter (Rectangular, QGate,
Sigmoid), :class:`_HardResetLoop` runs the same forward
in place (spikes written into the output's step slices by ``gt``, three kernels per step)
and a backward that computes exactly what autograd computes, op for op and in autograd's
order of accumulation, so the spikes and every gradient keep their bits (tested against the
recorded loop, including stride-0 inputs and ``detach_reset``). Per neuron call, forward
and backward, 1 thread: 1.36-1.50x faster on snn-small's feature maps and the spiking MLP's
hidden layer; a training step 1.10-1.21x (``benchmarks/bench_fused_lif.py``,
docs/ARCHITECTURE.md#tensor-layout). Where the compiled kernel is built
(:mod:`devprune.snn.native`) the forward, and for the rectangular and QGate surrogates the
backward, run it instead of :func:`torch_forward` / :func:`torch_backward`: the same bits,
another 2.5-4.0x per neuron call.

Per step ``t`` the recorded loop computes ``u_t = x_t + decay * r_{t-1}`` (``add`` with
``alpha``; ``r_{-1} = 0``; the BrainCog LIF: ``lerp(r_{t-1}, x_t, 1/tau)``),
``z_t = u_t - threshold``, ``s_t = H(z_t)`` and ``r_t = addcmul(u_t, u_t, s_t, value=-1)``.
Autograd's backward, step ``T-1`` down to 0, with ``g_u`` the gradient reaching ``u_{t+1}``:

- ``g_r = g_u * decay`` (the charge's ``alpha``; lerp's backward multiplies by
  ``1 - weight``); none at the last step, whose reset nothing reads;
- the spike's gradient: the output's ``g_s`` plus the reset's ``g_r * (u_t * -1)`` (two
  terms: their order cannot change the sum), here ``g_s - g_r * u_t``, the same operation;
  without the second term under ``detach_reset``;
- ``g_z = surrogate_grad(g_s', z_t)``, the surrogate's own function;
- ``u_t``'s gradient accumulates the reset's two contributions first (the reset node runs
  before the surrogate's, whose input waits for it) and the threshold's last:
  ``(g_r + g_r * (s_t * -1)) + g_z``; ``addcmul(g_r, g_r, s_t, value=-1)`` gives the bracket
  exactly (``s_t`` is 0 or 1: the product is exact, with or without a fused multiply-add);
- that is also ``x_t``'s gradient (lerp's backward multiplies it by ``weight``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from devprune.snn import native
from devprune.snn.surrogate import SurrogateGrad


@dataclass(frozen=True)
class Charge:
    """A membrane charge ``u = f(r, x)``, linear in the reset membrane ``r`` and the input
    ``x``: ``add`` is the STBP LIF's ``x + factor * r`` (``factor`` = decay), ``lerp`` the
    BrainCog LIF's ``r + factor * (x - r)`` (``factor`` = 1 / tau), each one ATen kernel."""

    kind: str
    factor: float

    def __post_init__(self) -> None:
        if self.kind not in ("add", "lerp"):
            raise ValueError(f"Charge.kind: 'add' or 'lerp', got {self.kind!r}")

    def step(self, membrane: torch.Tensor, x_t: torch.Tensor,
             out: torch.Tensor) -> torch.Tensor:
        if self.kind == "add":
            return torch.add(x_t, membrane, alpha=self.factor, out=out)
        return torch.lerp(membrane, x_t, self.factor, out=out)

    def membrane_factor(self) -> float:
        """``du/dr`` as autograd multiplies it: ``alpha``, or lerp's ``1 - weight``."""
        return self.factor if self.kind == "add" else 1.0 - self.factor

    def input_factor(self) -> float | None:
        """``du/dx`` as autograd multiplies it, None for 1 (``add``: no multiply at all)."""
        return None if self.kind == "add" else self.factor


class _HardResetLoop(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, charge: Charge, threshold: torch.Tensor,
                surrogate_grad: SurrogateGrad, parameter: float,
                detach_reset: bool) -> torch.Tensor:
        if native.supports(x):
            spikes, charged = native.forward(x, charge, threshold.item(), keep_charged=True)
        else:
            charged, spikes = torch_forward(x, charge, threshold)
        ctx.save_for_backward(charged, spikes)
        ctx.constants = (charge, threshold, surrogate_grad, parameter, detach_reset)
        return spikes

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_spikes: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        charged, spikes = ctx.saved_tensors
        charge, threshold, surrogate_grad, parameter, detach_reset = ctx.constants
        if native.has_backward(surrogate_grad) and native.supports(charged):
            grad_x = native.backward(grad_spikes, charged, spikes, charge, threshold.item(),
                                     surrogate_grad, parameter, detach_reset)
        else:
            grad_x = torch_backward(grad_spikes, charged, spikes, charge, threshold,
                                    surrogate_grad, parameter, detach_reset)
        return grad_x, None, None, None, None, None


def torch_forward(x: torch.Tensor, charge: Charge,
                  threshold: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The charged membranes and the spikes, ``[T, ...]`` each, by per-step torch kernels."""
    charged = torch.empty_like(x, memory_format=torch.contiguous_format)
    spikes = torch.empty_like(charged)
    membrane = torch.zeros_like(charged[0])
    for t in range(x.shape[0]):
        u = charge.step(membrane, x[t], out=charged[t])
        # u > threshold equals the recorded loop's u - threshold > 0 (docs of
        # MembraneNeuron.run_inference)
        torch.gt(u, threshold, out=spikes[t])
        if t < x.shape[0] - 1:
            torch.addcmul(u, u, spikes[t], value=-1.0, out=membrane)
    return charged, spikes


def torch_backward(grad_spikes: torch.Tensor, charged: torch.Tensor, spikes: torch.Tensor,
                   charge: Charge, threshold: torch.Tensor, surrogate_grad: SurrogateGrad,
                   parameter: float, detach_reset: bool) -> torch.Tensor:
    """The inputs' gradient, step ``T-1`` down to 0, by per-step torch kernels."""
    grad_x = torch.empty_like(charged)
    membrane_factor, input_factor = charge.membrane_factor(), charge.input_factor()
    grad_u = None  # the gradient reaching u_{t+1}
    for t in range(charged.shape[0] - 1, -1, -1):
        u, s, grad_s = charged[t], spikes[t], grad_spikes[t]
        z = u - threshold
        # with du/dx = 1 the gradient of u_t is x_t's: written in place
        out = grad_x[t] if input_factor is None else None
        if grad_u is None:
            grad_u = surrogate_grad(grad_s, z, parameter)
            if out is not None:
                out.copy_(grad_u)
        else:
            grad_r = grad_u * membrane_factor
            if not detach_reset:
                grad_s = torch.sub(grad_s, grad_r * u)
            grad_z = surrogate_grad(grad_s, z, parameter)
            grad_u = torch.addcmul(grad_r, grad_r, s, value=-1.0, out=out).add_(grad_z)
        if input_factor is not None:
            torch.mul(grad_u, input_factor, out=grad_x[t])
        else:
            grad_u = grad_x[t]
    return grad_x


def hard_reset_loop(x: torch.Tensor, charge: Charge, threshold: torch.Tensor,
                    surrogate_grad: SurrogateGrad, parameter: float,
                    detach_reset: bool = False) -> torch.Tensor:
    """Spikes ``[T, B, ...]`` of a LIF with ``charge`` and a hard reset to 0 for input
    currents ``x``, differentiable with the surrogate ``surrogate_grad(grad, u - threshold,
    parameter)``; the same values and gradients as the recorded per-step loop.
    ``threshold`` is a 0-dim tensor of ``x``'s dtype (``MembraneNeuron.threshold_tensor``):
    the value the recorded loop's Python float becomes in ``u - threshold``."""
    return _HardResetLoop.apply(x, charge, threshold, surrogate_grad, parameter,
                                detach_reset)
