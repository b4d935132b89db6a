"""Multi-step versions of stateless layers: time is folded into the batch dimension.

``Conv2d``, ``Linear``, ``BatchNorm*`` etc. here are subclasses of their ``torch.nn``
namesakes that accept ``[T, B, ...]``: the input is reshaped to ``[T*B, ...]``, the ordinary
layer runs once on all steps, and the output is reshaped back. Because they *are* the torch
classes (``isinstance(layer, nn.Conv2d)`` holds), pruning, measurement and compaction treat
them like any other layer. :class:`SeqToANN` does the same for any other stateless module.
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn

from devprune.errors import LayoutError


def fold_time(x: torch.Tensor, per_step_dims: int, layer: str) -> torch.Tensor:
    """``[T, B, *s] -> [T*B, *s]`` after checking that ``s`` has ``per_step_dims - 1`` dims."""
    if x.dim() != per_step_dims + 1:
        raise LayoutError(
            f"{layer} is multi-step and expects input with {per_step_dims + 1} dims "
            f"[T, B, ...]; got shape {tuple(x.shape)}. Add the time dimension first "
            "(e.g. devprune.snn.encoders.DirectEncoder) or use the plain torch.nn layer."
        )
    return x.flatten(0, 1)


def unfold_time(y: torch.Tensor, steps: int) -> torch.Tensor:
    """``[T*B, *s] -> [T, B, *s]``; ``unflatten`` keeps this torch.fx-traceable (no unpacking)."""
    return y.unflatten(0, (steps, -1))


def require_time_major(x: torch.Tensor, layer: str) -> torch.Tensor:
    """Raise :class:`LayoutError` unless ``x`` has at least the two dims ``[T, B]``."""
    if x.dim() < 2:
        raise LayoutError(f"{layer} expects [T, B, ...]; got shape {tuple(x.shape)}")
    return x


# torch.fx records calls to this check instead of tracing into its shape test, so modules
# with children (SeqToANN) stay traceable
torch.fx.wrap("require_time_major")


class _MultiStep:
    """Mixin: run the wrapped torch layer on time-folded input."""

    step_mode = "m"
    per_step_dims = 2  # dims of one step's tensor [B, ...]; overridden per layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        folded = fold_time(x, self.per_step_dims, type(self).__name__)
        return unfold_time(super().forward(folded), x.shape[0])  # type: ignore[misc]


class Conv2d(_MultiStep, nn.Conv2d):
    per_step_dims = 4


class Conv1d(_MultiStep, nn.Conv1d):
    per_step_dims = 3


class Linear(_MultiStep, nn.Linear):
    per_step_dims = 2


class BatchNorm2d(_MultiStep, nn.BatchNorm2d):
    per_step_dims = 4


class BatchNorm1d(_MultiStep, nn.BatchNorm1d):
    per_step_dims = 2


class MaxPool2d(_MultiStep, nn.MaxPool2d):
    per_step_dims = 4


class AvgPool2d(_MultiStep, nn.AvgPool2d):
    per_step_dims = 4


class AdaptiveAvgPool2d(_MultiStep, nn.AdaptiveAvgPool2d):
    per_step_dims = 4


class Dropout(_MultiStep, nn.Dropout):
    """Dropout drawn independently per time step (the folded batch)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise LayoutError(f"Dropout expects [T, B, ...]; got shape {tuple(x.shape)}")
        return nn.Dropout.forward(self, x)


class Flatten(nn.Flatten):
    """Flatten each step: ``[T, B, C, H, W] -> [T, B, C*H*W]`` (``start_dim`` is per step)."""

    step_mode = "m"

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__(start_dim, end_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3:
            raise LayoutError(f"Flatten expects [T, B, ...]; got shape {tuple(x.shape)}")
        end = self.end_dim if self.end_dim < 0 else self.end_dim + 1
        return x.flatten(self.start_dim + 1, end)


class SeqToANN(nn.Module):
    """Apply any stateless module to ``[T, B, ...]`` by folding time into the batch."""

    step_mode = "m"

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        require_time_major(x, "SeqToANN")
        return unfold_time(self.module(x.flatten(0, 1)), x.shape[0])


MULTI_STEP_LAYERS = (
    Conv2d, Conv1d, Linear, BatchNorm2d, BatchNorm1d, MaxPool2d, AvgPool2d,
    AdaptiveAvgPool2d, Dropout, Flatten, SeqToANN,
)


def is_multi_step(module: nn.Module) -> bool:
    """True when the module consumes and produces time-major ``[T, B, ...]`` tensors."""
    return getattr(module, "step_mode", "s") == "m"
