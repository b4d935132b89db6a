"""A user's own training loop with a devprune pruner in it, shared by the example scripts.

It is the README's loop (the pruner's hooks around forward, backward and the optimizer step)
over tensors held in memory, so a script only defines its model and data. Scripts that tests
load by path put this folder on ``sys.path`` first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from devprune.data import get_dataset

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def rate_mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MSE between output rates and one-hot targets (the spiking examples' loss)."""
    return nn.functional.mse_loss(out, nn.functional.one_hot(y, out.shape[1]).float())


def load_split(dataset: str, train_samples: int, test_samples: int,
               generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """A seeded subset of the training set and the first ``test_samples`` test images."""
    train = get_dataset(dataset, "train", val_fraction=0.0)
    test = get_dataset(dataset, "test")
    order = torch.randperm(len(train), generator=generator)[:train_samples]
    x_train, y_train = train.batch(order)
    x_test, y_test = test.batch(torch.arange(min(test_samples, len(test))))
    return x_train, y_train, x_test, y_test


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    """Top-1 accuracy in eval mode (the model's mode is restored after)."""
    was_training = model.training
    model.eval()
    correct = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
                  for i in range(0, len(x), batch))
    model.train(was_training)
    return correct / len(x)


def fit(model: nn.Module, pruner: Any, optimizer: torch.optim.Optimizer,
        data: tuple[torch.Tensor, ...], *, epochs: int, batch: int, loss_fn: Loss,
        generator: torch.Generator,
        after_step: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Trains ``epochs`` epochs with the pruner's hooks; returns one record per epoch (test
    accuracy, the pruner's connectivity, seconds). ``after_step`` runs after every optimizer
    step (e.g. to check that pruned weights stay zero)."""
    x_train, y_train, x_test, y_test = data
    history = []
    start = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(x_train), generator=generator)
        for i in range(0, len(x_train), batch):
            idx = order[i:i + batch]
            pruner.on_batch_start()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            pruner.on_after_backward()
            optimizer.step()
            pruner.on_after_step()
            if after_step is not None:
                after_step()
            pruner.on_batch_end()
        events = pruner.on_epoch_end(epoch)
        record = {"epoch": epoch + 1, "test_accuracy": accuracy(model, x_test, y_test),
                  "connectivity": events.get("connectivity"),
                  "seconds": round(time.perf_counter() - start, 1)}
        layers = events.get("layers") or {}
        for key in ("units_alive", "units_pruned"):
            if all(key in v for v in layers.values()) and layers:
                record[key] = {name: v[key] for name, v in layers.items()}
        history.append(record)
        print(f"  epoch {epoch + 1}/{epochs}: test {history[-1]['test_accuracy']:.2%}, "
              f"connectivity {history[-1]['connectivity']}", flush=True)
    return history


def pruned_weight_max(model: nn.Module, masks: Any) -> float:
    """The largest |w| among the weights ``masks`` mark pruned (0.0 when hard masks hold)."""
    modules = dict(model.named_modules())
    worst = 0.0
    for name in masks.names() if masks is not None else []:
        pruned = ~masks[name]
        if pruned.any():
            worst = max(worst, float(modules[name].weight.detach()[pruned].abs().max()))
    return worst
