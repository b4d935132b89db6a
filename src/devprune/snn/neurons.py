"""Multi-step spiking neurons over time-major input ``[T, B, ...]``.

Every neuron runs the same three-phase step per time step, iterating with ``x.unbind(0)``
(indexing ``x[t]`` would zero-fill a full ``[T, ...]`` gradient per step in backward)::

    u = charge(u, x_t)                  # neuron-specific leak + integration
    s = surrogate(u - threshold)        # exact 0./1. spikes, surrogate gradient
    u = reset(u, s)                     # hard: u * (1 - s) + s * v_reset; soft: u - s * threshold

With autograd off (eval, compacted inference) the same loop runs without the surrogate
function and in place (:meth:`MembraneNeuron.run_inference`), spike for spike equal.

The membrane starts at ``v_reset`` (0 by default) at every call, so no state survives a
call. ``detach_reset`` stops the gradient through the reset term (BrainCog detaches it; the
STBP reference does not).

Neuron types:

* :class:`STBPLIF` -- the small reference SNNs (DPAP/SD-SNN MNIST, N-MNIST, DVS-Gesture):
  ``u[t] = decay * u[t-1] * (1 - s[t-1]) + I[t]``, decay 0.2, V_th 0.5, rectangular surrogate.
* :class:`LIF` -- BrainCog form ``u <- u + (x - u) / tau``, tau 2, V_th 0.5, QGate(2).
* :class:`PLIF` -- learnable leak ``sigmoid(w) = 1 / tau`` (tau_init 2),
  ``u <- u + (x - u) * sigmoid(w)``, V_th 1.0 (BrainCog's library default, which is what the
  BrainCog scripts actually run; the original SpikingNN runs used 0.5), ATan(2) with a
  learnable alpha.
* :class:`IF` -- ``u <- u + x``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from devprune.errors import ConfigError
from devprune.snn import native
from devprune.snn.base import BaseNeuron
from devprune.snn.fused import Charge, hard_reset_loop
from devprune.snn.surrogate import ATan, QGate, Rectangular, Surrogate, build_surrogate

RESET_MODES = ("hard", "soft")
# (u, x_t, out=None) -> charged u; ``out=u`` charges in place (inference only)
ChargeFn = Callable[..., torch.Tensor]


class MembraneNeuron(BaseNeuron):
    """Shared charge-fire-reset loop; subclasses define :meth:`charge`."""

    def __init__(
        self,
        threshold: float,
        surrogate: Surrogate | str,
        reset: str = "hard",
        v_reset: float = 0.0,
        detach_reset: bool = False,
    ) -> None:
        super().__init__()
        if reset not in RESET_MODES:
            raise ConfigError(f"reset: must be one of {RESET_MODES}, got {reset!r}.")
        self.threshold = float(threshold)
        self.surrogate = build_surrogate(surrogate)
        self.reset_mode = reset
        self.v_reset = float(v_reset)
        self.detach_reset = bool(detach_reset)

    def charge(self, u: torch.Tensor, x: torch.Tensor,
               out: torch.Tensor | None = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def reset(self, u: torch.Tensor, s: torch.Tensor,
              out: torch.Tensor | None = None) -> torch.Tensor:
        if self.detach_reset:
            s = s.detach()
        # single fused kernels where possible: this runs once per time step and layer
        if self.reset_mode == "soft":
            return torch.sub(u, s, alpha=self.threshold, out=out)  # u - threshold * s
        if self.v_reset == 0.0:
            return torch.addcmul(u, u, s, value=-1.0, out=out)  # u * (1 - s)
        return torch.addcmul(u, s, self.v_reset - u, out=out)  # u * (1 - s) + s * v_reset

    def initial_membrane(self, like: torch.Tensor) -> torch.Tensor:
        return torch.full_like(like, self.v_reset)

    def multi_step(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x, self.charge)

    def run(self, x: torch.Tensor, charge: ChargeFn) -> torch.Tensor:
        """The charge-fire-reset loop with the given charge function: differentiable while
        autograd records, the lean :meth:`run_inference` otherwise (same spikes)."""
        if torch.is_grad_enabled():
            return self.run_differentiable(x, charge)
        return self.run_inference(x, charge)

    def run_differentiable(self, x: torch.Tensor, charge: ChargeFn) -> torch.Tensor:
        """The loop over ``x.unbind(0)`` with surrogate-gradient spikes."""
        steps = x.unbind(0)
        u = self.initial_membrane(steps[0])
        spikes = []
        for x_t in steps:
            u = charge(u, x_t)
            s = self.surrogate(u - self.threshold)
            u = self.reset(u, s)
            spikes.append(s)
        return torch.stack(spikes)

    def fused_charge(self, charge: ChargeFn) -> Charge | None:
        """``charge`` as a :class:`~devprune.snn.fused.Charge` where the whole training loop
        may run as one autograd Function (devprune.snn.fused); None: the recorded loop.
        Subclasses with such a charge say which."""
        return None

    def run_fused(self, x: torch.Tensor, charge: ChargeFn) -> torch.Tensor:
        """The training loop as one autograd Function with the recorded loop's bits when the
        charge is fusable, the reset the base class's hard reset to 0 and the surrogate's
        parameter fixed (Rectangular, QGate, Sigmoid); else the recorded loop. 1.4-1.7x
        faster forward and backward; under torch.compile the recorded loop is traced."""
        fused = self._hard_reset_charge(charge)
        gradient = self.surrogate.fixed_gradient()
        if (fused is None or gradient is None or x.dtype not in (torch.float32, torch.float64)
                or torch.compiler.is_compiling()):
            return MembraneNeuron.run_differentiable(self, x, charge)
        return hard_reset_loop(x, fused, self.threshold_tensor(x), *gradient,
                               detach_reset=self.detach_reset)

    def run_native_inference(self, x: torch.Tensor, charge: ChargeFn) -> torch.Tensor:
        """:meth:`run_inference` as one compiled pass over T where the charge is fusable, the
        reset a hard reset to 0 and the kernel built (devprune.snn.native): the same spikes,
        2.6-5.7x faster per call; else the per-step loop."""
        fused = self._hard_reset_charge(charge)
        if fused is None or not native.supports(x):
            return MembraneNeuron.run_inference(self, x, charge)
        # the kernel rounds the float threshold to x's dtype as threshold_tensor does
        return native.forward(x, fused, self.threshold, keep_charged=False)[0]

    def _hard_reset_charge(self, charge: ChargeFn) -> Charge | None:
        """The fusable charge when the reset is the base class's hard reset to 0."""
        if (self.reset_mode != "hard" or self.v_reset != 0.0
                or type(self).reset is not MembraneNeuron.reset):
            return None
        return self.fused_charge(charge)

    def run_inference(self, x: torch.Tensor, charge: ChargeFn) -> torch.Tensor:
        """The same loop without autograd (eval, compacted inference), spike for spike.

        Per step and layer the differentiable loop pays a surrogate ``autograd.Function``
        call, a ``u - threshold`` kernel, a bool->float copy and at the end a ``stack`` of
        the T spike tensors: fixed costs that dominate small (compacted) layers. Here the
        spikes are written as floats straight into the output's step slice by one ``gt``
        kernel (a float output: comparisons into bool tensors are 5-8x slower on CPU).
        ``u > threshold`` equals the surrogate's ``u - threshold > 0`` exactly: in IEEE
        arithmetic with gradual underflow a difference is zero only for equal operands and
        rounding keeps its sign (the threshold is cast to ``u``'s dtype in both; here it is
        a cached 0-dim tensor of that dtype, which spares ``gt`` wrapping a Python scalar
        per call). Charge and reset are the very same kernels as in training, run in place
        on the membrane, with two exact shortcuts: the first step charges from rest through
        :meth:`charge_from_rest` (for STBP LIF and IF with ``v_reset`` 0 that is the input
        itself, no kernel), and the membrane is not reset after the last step (nobody reads
        it). Membranes may differ from the training loop's only in the sign of a zero,
        which no comparison with the threshold sees.
        """
        if torch.is_grad_enabled():  # called directly: the in-place updates need no autograd
            with torch.no_grad():
                return self.run_inference(x, charge)
        spikes = torch.empty_like(x, memory_format=torch.contiguous_format)
        steps, out = x.unbind(0), spikes.unbind(0)
        threshold = self.threshold_tensor(x)
        u = self.charge_from_rest(steps[0], charge)
        torch.gt(u, threshold, out=out[0])
        if len(steps) == 1:
            return spikes
        u = self.reset(u, out[0])  # a new tensor: ``u`` may be the caller's input
        for x_t, s_t in zip(steps[1:-1], out[1:-1], strict=True):
            charge(u, x_t, out=u)  # in place: no autograd needs the old membrane
            torch.gt(u, threshold, out=s_t)
            self.reset(u, s_t, out=u)
        charge(u, steps[-1], out=u)
        torch.gt(u, threshold, out=out[-1])  # the last step: no reset, the membrane ends
        return spikes

    def charge_from_rest(self, x0: torch.Tensor, charge: ChargeFn) -> torch.Tensor:
        """The membrane after the first step's charge, ``charge(initial_membrane, x0)``. May
        return ``x0`` itself where that is exact (the caller never writes into it)."""
        return charge(self.initial_membrane(x0), x0)

    def threshold_tensor(self, like: torch.Tensor) -> torch.Tensor:
        """``threshold`` as a 0-dim tensor of ``like``'s dtype and device, cached (the same
        value ``gt`` would cast a Python scalar to)."""
        key = (self.threshold, like.dtype, like.device)
        cached = self.__dict__.get("_threshold_cache")
        if cached is None or cached[0] != key:
            value = torch.tensor(self.threshold, dtype=like.dtype, device=like.device)
            cached = self.__dict__["_threshold_cache"] = (key, value)
        return cached[1]

    def extra_repr(self) -> str:
        return (
            f"threshold={self.threshold}, reset={self.reset_mode!r}, v_reset={self.v_reset}, "
            f"detach_reset={self.detach_reset}"
        )


class STBPLIF(MembraneNeuron):
    """Discrete LIF of the STBP reference SNNs: ``u[t] = decay * u_reset[t-1] + I[t]``."""

    def __init__(
        self,
        decay: float = 0.2,
        threshold: float = 0.5,
        surrogate: Surrogate | str | None = None,
        reset: str = "hard",
        v_reset: float = 0.0,
        detach_reset: bool = False,
    ) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ConfigError(f"STBPLIF: decay must be in [0, 1], got {decay!r}.")
        super().__init__(threshold, surrogate or Rectangular(0.5), reset, v_reset, detach_reset)
        self.decay = float(decay)

    def charge(self, u: torch.Tensor, x: torch.Tensor,
               out: torch.Tensor | None = None) -> torch.Tensor:
        return torch.add(x, u, alpha=self.decay, out=out)  # one fused kernel: x + decay * u

    def charge_from_rest(self, x0: torch.Tensor, charge: ChargeFn) -> torch.Tensor:
        if self._stbp_charge(charge):
            return x0  # x0 + decay * 0 = x0 (up to the sign of a zero)
        return super().charge_from_rest(x0, charge)

    def run_differentiable(self, x: torch.Tensor, charge: ChargeFn) -> torch.Tensor:
        return self.run_fused(x, charge)

    def fused_charge(self, charge: ChargeFn) -> Charge | None:
        if charge == self.charge and type(self).charge is STBPLIF.charge:
            return Charge("add", self.decay)
        return None

    def run_inference(self, x: torch.Tensor, charge: ChargeFn) -> torch.Tensor:
        return self.run_native_inference(x, charge)

    def _stbp_charge(self, charge: ChargeFn) -> bool:
        """Whether ``charge`` is this class's own ``x + decay * u`` from a rest at 0, and the
        reset the base class's (a subclass's own reset keeps the recorded loop)."""
        return (self.v_reset == 0.0 and charge == self.charge
                and type(self).charge is STBPLIF.charge
                and type(self).reset is MembraneNeuron.reset)

    def extra_repr(self) -> str:
        return f"decay={self.decay}, " + super().extra_repr()


class LIF(MembraneNeuron):
    """BrainCog-form LIF: ``u <- u + (x - u) / tau`` (``v_reset`` = 0 as in BrainCog)."""

    def __init__(
        self,
        tau: float = 2.0,
        threshold: float = 0.5,
        surrogate: Surrogate | str | None = None,
        reset: str = "hard",
        v_reset: float = 0.0,
        detach_reset: bool = True,
    ) -> None:
        if not tau >= 1.0:
            raise ConfigError(f"LIF: tau must be >= 1 (leak factor 1/tau <= 1), got {tau!r}.")
        super().__init__(threshold, surrogate or QGate(2.0), reset, v_reset, detach_reset)
        self.tau = float(tau)

    def charge(self, u: torch.Tensor, x: torch.Tensor,
               out: torch.Tensor | None = None) -> torch.Tensor:
        return torch.lerp(u, x, 1.0 / self.tau, out=out)  # u + (x - u) / tau in one kernel

    def run_differentiable(self, x: torch.Tensor, charge: ChargeFn) -> torch.Tensor:
        return self.run_fused(x, charge)

    def run_inference(self, x: torch.Tensor, charge: ChargeFn) -> torch.Tensor:
        return self.run_native_inference(x, charge)

    def fused_charge(self, charge: ChargeFn) -> Charge | None:
        if charge == self.charge and type(self).charge is LIF.charge:
            return Charge("lerp", 1.0 / self.tau)
        return None

    def extra_repr(self) -> str:
        return f"tau={self.tau}, " + super().extra_repr()


class PLIF(MembraneNeuron):
    """Parametric LIF: learnable leak ``sigmoid(w) = 1 / tau``; ``u <- u + (x - u) sigmoid(w)``.

    ``threshold`` defaults to 1.0, BrainCog's ``PLIFNode`` default and what the BrainCog
    DPAP / SD-SNN scripts actually run; the authors' original SpikingNN runs used 0.5.
    """

    def __init__(
        self,
        tau_init: float = 2.0,
        threshold: float = 1.0,
        surrogate: Surrogate | str | None = None,
        reset: str = "hard",
        v_reset: float = 0.0,
        detach_reset: bool = True,
    ) -> None:
        if not tau_init > 1.0:
            raise ConfigError(f"PLIF: tau_init must be > 1, got {tau_init!r}.")
        default_surrogate = ATan(2.0, learnable=True)
        super().__init__(threshold, surrogate or default_surrogate, reset, v_reset, detach_reset)
        # sigmoid(w) = 1/tau  <=>  w = -log(tau - 1)
        self.w = nn.Parameter(torch.tensor(-math.log(tau_init - 1.0)))

    @property
    def tau(self) -> float:
        return float(1.0 / torch.sigmoid(self.w.detach()))

    def multi_step(self, x: torch.Tensor) -> torch.Tensor:
        leak = torch.sigmoid(self.w).to(x.dtype)  # once per call, not per step
        return self.run(x, lambda u, x_t, out=None: torch.lerp(u, x_t, leak, out=out))

    def charge(self, u: torch.Tensor, x: torch.Tensor,
               out: torch.Tensor | None = None) -> torch.Tensor:
        leak = torch.sigmoid(self.w).to(x.dtype)
        return torch.lerp(u, x, leak, out=out)  # u + (x - u) * sigmoid(w)

    def extra_repr(self) -> str:
        return f"tau={self.tau:.4g} (learnable), " + super().extra_repr()


class IF(MembraneNeuron):
    """Integrate-and-fire without leak: ``u <- u + x``."""

    def __init__(
        self,
        threshold: float = 1.0,
        surrogate: Surrogate | str | None = None,
        reset: str = "hard",
        v_reset: float = 0.0,
        detach_reset: bool = False,
    ) -> None:
        super().__init__(threshold, surrogate or ATan(2.0), reset, v_reset, detach_reset)

    def charge(self, u: torch.Tensor, x: torch.Tensor,
               out: torch.Tensor | None = None) -> torch.Tensor:
        return torch.add(u, x, out=out)

    def charge_from_rest(self, x0: torch.Tensor, charge: ChargeFn) -> torch.Tensor:
        if self.v_reset == 0.0 and charge == self.charge and type(self).charge is IF.charge:
            return x0  # 0 + x0 = x0 (up to the sign of a zero)
        return super().charge_from_rest(x0, charge)


NEURONS: dict[str, type[MembraneNeuron]] = {
    "stbp-lif": STBPLIF,
    "lif": LIF,
    "plif": PLIF,
    "if": IF,
}


def build_neuron(name: str, **kwargs: Any) -> MembraneNeuron:
    """A neuron by name (``stbp-lif``, ``lif``, ``plif``, ``if``) with constructor kwargs."""
    try:
        cls = NEURONS[name]
    except KeyError:
        raise ConfigError(
            f"neuron: unknown type {name!r}; choose one of {sorted(NEURONS)}."
        ) from None
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"neuron {name!r}: bad parameter ({exc}).") from None


def neuron_factory(name: str, **kwargs: Any) -> Callable[[], MembraneNeuron]:
    """A zero-argument callable building fresh neurons of one type (for model builders)."""
    build_neuron(name, **kwargs)  # validate once, at model-definition time
    # deep-copied so that a surrogate instance passed in (e.g. a learnable ATan) is not
    # shared between layers
    return lambda: build_neuron(name, **copy.deepcopy(kwargs))
