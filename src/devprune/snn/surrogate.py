"""Surrogate-gradient spike functions.

Each surrogate is a small ``nn.Module`` mapping ``x = u - threshold`` to spikes
``H(x) = 1[x > 0]`` (exactly 0./1. in the input's dtype; the STBP reference code fires on
``u > V_th``). In the backward pass the Heaviside step is replaced by the derivative of a
smooth (or piecewise-linear) function ``f`` with ``f(-inf) = 0`` and ``f(+inf) = 1``:

==============  ==========================================  ===================================
surrogate       f(x)                                        f'(x)
==============  ==========================================  ===================================
Rectangular     clamp(x / (2w) + 1/2, 0, 1)                 1/(2w) if |x| < w else 0
ATan            arctan(pi/2 * alpha * x) / pi + 1/2         alpha/2 / (1 + (pi/2 alpha x)^2)
Sigmoid         sigmoid(alpha * x)                          alpha * f * (1 - f)
QGate           0 | -alpha^2/2 |x| x + alpha x + 1/2 | 1    alpha - alpha^2 |x| if |x| < 1/alpha
==============  ==========================================  ===================================

With ``w = 0.5`` the rectangle has height 1, which is exactly the STBP reference
(``|u - V_th| < lens``, ``lens = 0.5``). ``ATan`` accepts a learnable ``alpha`` (BrainCog's
PLIF default); its gradient with respect to ``alpha`` is ``df/dalpha`` of the smooth form.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from devprune.errors import ConfigError


def heaviside(x: torch.Tensor) -> torch.Tensor:
    """Spikes as exact 0./1. floats: ``1`` where ``x > 0``."""
    return (x > 0).to(x.dtype)


def rectangular_grad(grad_out: torch.Tensor, x: torch.Tensor, half_width: float) -> torch.Tensor:
    window = (x.abs() < half_width).to(grad_out.dtype)
    return grad_out * window * (0.5 / half_width)


def qgate_grad(grad_out: torch.Tensor, x: torch.Tensor, alpha: float) -> torch.Tensor:
    slope = (alpha - alpha * alpha * x.abs()).clamp_min(0.0)  # zero outside |x| < 1/alpha
    return grad_out * slope


def _sigmoid_grad(grad_out: torch.Tensor, x: torch.Tensor, alpha: float) -> torch.Tensor:
    sig = torch.sigmoid(alpha * x)
    return grad_out * alpha * sig * (1.0 - sig)


# The backward pass of a surrogate with one fixed float parameter: ``(grad_out, x, param)
# -> grad_x``. It takes ``grad_out`` itself (not a slope to multiply) so each surrogate keeps
# its own order of products, and with it its exact gradient bits.
SurrogateGrad = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


class _FixedParameterFn(torch.autograd.Function):
    """Heaviside forward, ``grad(grad_out, x, param)`` backward (Rectangular, QGate, Sigmoid)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, grad: SurrogateGrad, param: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.grad = grad
        ctx.param = param
        return heaviside(x)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return ctx.grad(grad_out, x, ctx.param), None, None


class _ATanFn(torch.autograd.Function):
    """``alpha`` is a tensor so that it can be learned (BrainCog ``AtanGrad``)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, alpha)
        return heaviside(x)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, alpha = ctx.saved_tensors
        denom = 1.0 + (0.5 * math.pi * alpha * x).square()
        grad_x = grad_out * (0.5 * alpha) / denom
        grad_alpha = None
        if ctx.needs_input_grad[1]:
            grad_alpha = (grad_out * 0.5 * x / denom).sum().reshape(alpha.shape)
        return grad_x, grad_alpha


def _positive(name: str, value: float, surrogate: str) -> float:
    if not value > 0:
        raise ConfigError(f"{surrogate}: {name} must be > 0, got {value!r}.")
    return float(value)


class Surrogate(nn.Module):
    """Base class: ``forward(x)`` returns Heaviside spikes of ``x = u - threshold``."""

    def smooth(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """The smooth function whose derivative is used as the surrogate gradient."""
        raise NotImplementedError

    def fixed_gradient(self) -> tuple[SurrogateGrad, float] | None:
        """``(grad, parameter)`` when the backward is ``grad(grad_out, x, parameter)`` with a
        fixed float parameter (what fused loops call, devprune.snn.fused); None otherwise."""
        return None


class Rectangular(Surrogate):
    """Rectangular window of half-width ``half_width`` (STBP reference: 0.5, height 1)."""

    def __init__(self, half_width: float = 0.5) -> None:
        super().__init__()
        self.half_width = _positive("half_width", half_width, "Rectangular")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _FixedParameterFn.apply(x, rectangular_grad, self.half_width)

    def fixed_gradient(self) -> tuple[SurrogateGrad, float] | None:
        if type(self).forward is not Rectangular.forward:  # a subclass's own spikes
            return None
        return rectangular_grad, self.half_width

    def smooth(self, x: torch.Tensor) -> torch.Tensor:
        return (x / (2 * self.half_width) + 0.5).clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"half_width={self.half_width}"


class _FixedAlpha(Surrogate):
    """A surrogate with one fixed positive sharpness ``alpha``; ``_grad`` is its backward."""

    _grad: SurrogateGrad

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = _positive("alpha", alpha, type(self).__name__)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _FixedParameterFn.apply(x, self._grad, self.alpha)

    def fixed_gradient(self) -> tuple[SurrogateGrad, float] | None:
        if type(self).forward is not _FixedAlpha.forward:  # a subclass's own spikes
            return None
        return self._grad, self.alpha

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class QGate(_FixedAlpha):
    """Quadratic gate (BrainCog ``QGateGrad``): slope ``alpha - alpha^2 |x|`` near 0."""

    _grad = staticmethod(qgate_grad)

    def __init__(self, alpha: float = 2.0) -> None:
        super().__init__(alpha)

    def smooth(self, x: torch.Tensor) -> torch.Tensor:
        a = self.alpha
        inner = -0.5 * a * a * x.abs() * x + a * x + 0.5
        return torch.where(x < -1 / a, torch.zeros_like(x), torch.where(x > 1 / a, 1.0, inner))


class Sigmoid(_FixedAlpha):
    """Sigmoid surrogate: slope ``alpha * s * (1 - s)`` with ``s = sigmoid(alpha x)``."""

    _grad = staticmethod(_sigmoid_grad)

    def __init__(self, alpha: float = 4.0) -> None:
        super().__init__(alpha)

    def smooth(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.alpha * x)


class ATan(Surrogate):
    """Arctan surrogate; ``learnable=True`` makes ``alpha`` an ``nn.Parameter`` (BrainCog PLIF)."""

    def __init__(self, alpha: float = 2.0, learnable: bool = False) -> None:
        super().__init__()
        value = torch.tensor(_positive("alpha", alpha, "ATan"))
        if learnable:
            self.alpha = nn.Parameter(value)
        else:
            self.register_buffer("alpha", value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ATanFn.apply(x, self.alpha.to(x.dtype))

    def smooth(self, x: torch.Tensor) -> torch.Tensor:
        return torch.atan(0.5 * math.pi * self.alpha * x) / math.pi + 0.5

    def extra_repr(self) -> str:
        learnable = isinstance(self.alpha, nn.Parameter)
        return f"alpha={float(self.alpha.detach()):g}, learnable={learnable}"


SURROGATES: dict[str, type[Surrogate]] = {
    "rectangular": Rectangular,
    "atan": ATan,
    "sigmoid": Sigmoid,
    "qgate": QGate,
}


def build_surrogate(spec: str | Surrogate, **kwargs: Any) -> Surrogate:
    """A surrogate from its name (``rectangular``, ``atan``, ``sigmoid``, ``qgate``) or as is."""
    if isinstance(spec, Surrogate):
        return spec
    try:
        cls = SURROGATES[spec]
    except KeyError:
        raise ConfigError(
            f"surrogate: unknown name {spec!r}; choose one of {sorted(SURROGATES)}."
        ) from None
    return cls(**kwargs)
