"""The Pruner hook sequence of one training batch, for tests that drive a pruner by hand."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from devprune.pruning.base import Pruner


def train_batches(model: nn.Module, pruner: Pruner, optimizer: torch.optim.Optimizer,
                  x: torch.Tensor, batches: int,
                  loss_fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """``batches`` training steps on input ``x`` with every hook in the contract's order."""
    for _ in range(batches):
        pruner.on_batch_start()
        loss = loss_fn(model(x))
        optimizer.zero_grad()
        loss.backward()
        pruner.on_after_backward()
        optimizer.step()
        pruner.on_after_step()
        pruner.on_batch_end()
