"""One training epoch and one evaluation pass, driving the Pruner hooks of pruning/base.py.

The pieces are plain functions over a model, an iterable of ``(inputs, labels)`` batches and
a :class:`~devprune.pruning.base.Pruner`, so a user's own script can reuse them. In a
data-parallel run each rank passes its own shard and ``all_reduce=True`` sums the pass's loss,
correct and sample counts over the ranks, so every rank returns the global result.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from devprune.distributed import all_reduce_sums
from devprune.errors import ConfigError, TrainingDivergedError
from devprune.pruning.base import Pruner
from devprune.runner.config import TrainConfig

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ------------------------------------------------------------------------------------------
# Optimiser and learning-rate schedule
# ------------------------------------------------------------------------------------------


def _param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.decay_1d or cfg.weight_decay == 0:
        return [{"params": params, "weight_decay": cfg.weight_decay}]
    # timm's rule (used by the BrainCog recipe): biases and norm affine are not decayed.
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (with momentum / Nesterov) as ``train`` describes."""
    groups = _param_groups(model, cfg)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.nesterov and cfg.momentum <= 0:
        raise ConfigError("train.nesterov: Nesterov needs train.momentum > 0 (e.g. 0.9)")
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


def lr_at(epoch: int, cfg: TrainConfig) -> float:
    """The learning rate of (0-based) ``epoch``: warm-up, then the chosen schedule."""
    if epoch < cfg.warmup_epochs:
        return cfg.warmup_lr + (cfg.lr - cfg.warmup_lr) * epoch / cfg.warmup_epochs
    if cfg.schedule == "cosine":
        # timm's CosineLRScheduler (warmup_prefix=False), as the BrainCog recipe runs it.
        cosine = 0.5 * (1.0 + math.cos(math.pi * epoch / cfg.epochs))
        return cfg.min_lr + (cfg.lr - cfg.min_lr) * cosine
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** sum(1 for m in cfg.milestones if epoch >= m)
    return cfg.lr


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-epoch scheduler whose factor reproduces :func:`lr_at` (call ``step()`` per epoch)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_at(e, cfg) / cfg.lr)


# ------------------------------------------------------------------------------------------
# Epochs
# ------------------------------------------------------------------------------------------


@dataclass
class PassResult:
    """Mean loss and accuracy of one pass over a loader."""

    loss: float
    accuracy: float
    samples: int


def _progress(iterable: Iterable, *, desc: str, total: int | None, enabled: bool) -> Iterable:
    if not enabled or not sys.stderr.isatty():
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True,
                unit="batch", file=sys.stderr)


def _length(loader: Iterable) -> int | None:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None


def train_epoch(
    model: nn.Module,
    loader: Iterable,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    pruner: Pruner,
    *,
    epoch: int,
    device: torch.device,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = False,
    all_reduce: bool = False,
    after_batch: Callable[[int], Any] | None = None,
) -> PassResult:
    """Train ``model`` for one epoch, calling every per-batch Pruner hook in contract order.

    ``forward`` replaces ``model`` for the forward pass (a ``torch.compile``d wrapper, or the
    DistributedDataParallel wrapper of a data-parallel run). ``after_batch(index)`` runs
    after each batch's hooks; a forward it returns replaces ``forward`` (in-training
    compaction shrank the model and rebuilt its wrappers).
    Raises TrainingDivergedError at the first batch whose loss is not finite.
    """
    forward = model if forward is None else forward
    model.train()
    total_loss = torch.zeros((), dtype=torch.float64)
    correct = seen = 0
    bar = _progress(loader, desc=f"epoch {epoch + 1}", total=_length(loader), enabled=progress)
    for batch_index, (inputs, labels) in enumerate(bar):
        inputs, labels = inputs.to(device), labels.to(device)
        pruner.on_batch_start()
        outputs = forward(inputs)
        pruner.on_forward(outputs.detach(), labels)
        loss = loss_fn(outputs, labels)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise _diverged(epoch, batch_index, loss_value, optimizer)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        pruner.on_after_backward()
        optimizer.step()
        pruner.on_after_step()
        pruner.on_batch_end()
        if after_batch is not None and (rebuilt := after_batch(batch_index)) is not None:
            forward = rebuilt
        total_loss += loss_value * labels.shape[0]
        correct += int((outputs.detach().argmax(dim=1) == labels).sum())
        seen += labels.shape[0]
        if bar is not loader:
            bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
    return _result(total_loss, correct, seen, all_reduce)


def _result(total_loss: torch.Tensor, correct: int, seen: int, all_reduce: bool) -> PassResult:
    loss_sum = float(total_loss)
    if all_reduce:
        loss_sum, correct_sum, seen_sum = all_reduce_sums([loss_sum, correct, seen])
        correct, seen = int(correct_sum), int(seen_sum)
    return PassResult(loss_sum / max(seen, 1), correct / max(seen, 1), seen)


def _diverged(epoch: int, batch: int, value: float, opt: torch.optim.Optimizer) -> Exception:
    lr = opt.param_groups[0]["lr"]
    return TrainingDivergedError(
        f"training diverged: loss is {value} at epoch {epoch + 1}, batch {batch + 1} "
        f"(lr {lr:.3g}); lower train.lr (e.g. --set train.lr={lr / 10:.3g}) or add warm-up "
        "(train.warmup_epochs)"
    )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    loss_fn: LossFn,
    *,
    device: torch.device,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    all_reduce: bool = False,
) -> PassResult:
    """Mean loss and accuracy on ``loader`` in eval mode (no pruner hooks: no recording)."""
    forward = model if forward is None else forward
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), dtype=torch.float64)
    correct = seen = 0
    for inputs, labels in loader:
        inputs, labels = inputs.to(device), labels.to(device)
        outputs = forward(inputs)
        total_loss += float(loss_fn(outputs, labels)) * labels.shape[0]
        correct += int((outputs.argmax(dim=1) == labels).sum())
        seen += labels.shape[0]
    model.train(was_training)
    return _result(total_loss, correct, seen, all_reduce)
