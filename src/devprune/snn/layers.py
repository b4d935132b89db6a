"""Multi-step versions of stateless layers: time is folded into the batch dimension.

``Conv2d``, ``Linear``, ``BatchNorm*`` etc. here are subclasses of their ``torch.nn``
namesakes that accept ``[T, B, ...]``: the input is reshaped to ``[T*B, ...]``, the ordinary
layer runs once on all steps, and the output is reshaped back (an input repeated over time,
as the direct encoder makes it, runs one step: :class:`_MultiStep`). Because they *are* the torch
classes (``isinstance(layer, nn.Conv2d)`` holds), pruning, measurement and compaction treat
them like any other layer. :class:`SeqToANN` does the same for any other stateless module.
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn

from devprune.errors import LayoutError
from devprune.snn.pooling import FastAvgPool2d


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


def repeated_over_time(x: torch.Tensor) -> bool:
    """Whether ``[T, B, ...]`` is one step's tensor repeated T > 1 times as a broadcast view
    (stride 0 along T), as :class:`~devprune.snn.encoders.DirectEncoder` makes it."""
    return x.dim() > 1 and x.shape[0] > 1 and x.stride(0) == 0


class _MultiStep:
    """Mixin: run the wrapped torch layer on time-folded input.

    A per-sample, deterministic layer (``per_step_only``) fed the same input at every step
    (a directly encoded image) computes one step and repeats the result as a broadcast
    view: T times less work forward and backward (autograd sums the repeated gradient
    once), the same values per step; SpikingJelly's CIFAR examples run their first
    convolution once for the same reason. Layers whose result depends on the whole folded
    batch (BatchNorm's batch statistics) or draws per step (Dropout) always fold.
    """

    step_mode = "m"
    per_step_dims = 2  # dims of one step's tensor [B, ...]; overridden per layer

    def per_step_only(self) -> bool:
        """Whether each output step depends on its own input step only."""
        return True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == self.per_step_dims + 1 and repeated_over_time(x) and self.per_step_only():
            step = super().forward(x[0])  # type: ignore[misc]
            return step.expand(x.shape[0], *step.shape)
        folded = fold_time(x, self.per_step_dims, type(self).__name__)
        return unfold_time(super().forward(folded), x.shape[0])  # type: ignore[misc]


class _MultiStepNorm(_MultiStep):
    """BatchNorm: per sample only in eval with running statistics; in training its batch
    statistics (the unbiased variance's count) take all T*B rows."""

    def per_step_only(self) -> bool:
        return not self.training and self.running_mean is not None  # type: ignore[attr-defined]


class Conv2d(_MultiStep, nn.Conv2d):
    per_step_dims = 4


class Conv1d(_MultiStep, nn.Conv1d):
    per_step_dims = 3


class Linear(_MultiStep, nn.Linear):
    per_step_dims = 2


class BatchNorm2d(_MultiStepNorm, nn.BatchNorm2d):
    per_step_dims = 4


class BatchNorm1d(_MultiStepNorm, nn.BatchNorm1d):
    per_step_dims = 2


class MaxPool2d(_MultiStep, nn.MaxPool2d):
    per_step_dims = 4


class AvgPool2d(_MultiStep, FastAvgPool2d):
    """2x2 windows with stride 2 take exact strided adds on the CPU (:mod:`.pooling`)."""

    per_step_dims = 4


class AdaptiveAvgPool2d(_MultiStep, nn.AdaptiveAvgPool2d):
    per_step_dims = 4


class Dropout(_MultiStep, nn.Dropout):
    """Dropout drawn independently per time step (the folded batch)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise LayoutError(f"Dropout expects [T, B, ...]; got shape {tuple(x.shape)}")
        return nn.Dropout.forward(self, x)  # a repeated input gets independent draws


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
