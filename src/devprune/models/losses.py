"""Readout losses for ``[B, classes]`` model outputs.

``rate_mse`` is the papers' loss: mean squared error between the output layer's firing
rates and a one-hot target of height ``value`` (1.0; BrainCog's ``UnilateralMse(1.0)``
reduces to exactly this). ``cross_entropy`` is the usual choice for ANN logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from devprune.errors import ConfigError, LayoutError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check(outputs: torch.Tensor, target: torch.Tensor) -> None:
    if outputs.dim() != 2 or target.dim() != 1 or target.shape[0] != outputs.shape[0]:
        raise LayoutError(
            f"loss expects outputs [B, classes] and integer labels [B]; got "
            f"{tuple(outputs.shape)} and {tuple(target.shape)}."
        )


def rate_mse_loss(rates: torch.Tensor, target: torch.Tensor, value: float = 1.0) -> torch.Tensor:
    """MSE between rates ``[B, K]`` and ``value * one_hot(target, K)``, averaged over B*K."""
    _check(rates, target)
    one_hot = F.one_hot(target.long(), rates.shape[1]).to(rates.dtype) * value
    return F.mse_loss(rates, one_hot)


def cross_entropy_loss(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy treating ``outputs`` as logits."""
    _check(outputs, target)
    return F.cross_entropy(outputs, target.long())


LOSSES: dict[str, LossFn] = {
    "rate_mse": rate_mse_loss,
    "mse": rate_mse_loss,
    "cross_entropy": cross_entropy_loss,
    "ce": cross_entropy_loss,
}


def get_loss(name: str) -> LossFn:
    """Loss by name: ``rate_mse`` (alias ``mse``) or ``cross_entropy`` (alias ``ce``)."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ConfigError(f"loss: unknown name {name!r}; choose one of {sorted(LOSSES)}.") from None
