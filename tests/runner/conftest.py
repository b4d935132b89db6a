"""Shared fixtures: a tiny, fast experiment on the in-memory synthetic dataset."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from devprune.pruning import base as pruning_base
from devprune.pruning.base import Pruner
from tests.runner.tiny import TINY


@pytest.fixture
def tiny_raw() -> dict[str, Any]:
    """A fresh copy of the tiny configuration as plain data."""
    return yaml.safe_load(yaml.safe_dump(TINY))


@pytest.fixture
def tiny_yaml(tmp_path: Path, tiny_raw: dict[str, Any]) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_raw))
    return path


@dataclasses.dataclass
class ShrinkConfig:
    """Settings of the test-only magnitude pruner."""

    fraction: float = 0.2
    start_epoch: int = 1
    mode: str = "default"


class ShrinkPruner(Pruner):
    """Test-only method with real state: each epoch from ``start_epoch`` it masks the
    smallest ``fraction`` of the still-alive weights of every Linear layer (hard masks kept
    after each step), and counts its steps. Resume is exact only if the runner saves and
    restores this state and calls the hooks in contract order."""

    name = "shrink"

    def __init__(self, model: torch.nn.Module, example_input: Any = None,
                 config: Any = None) -> None:
        super().__init__(model, example_input, config)
        self.layers = {n: m for n, m in model.named_modules()
                       if isinstance(m, torch.nn.Linear)}
        self.weight_masks = {n: torch.ones_like(m.weight, dtype=torch.bool)
                             for n, m in self.layers.items()}
        self.steps = 0
        self.batches = 0

    def on_after_step(self) -> None:
        with torch.no_grad():
            for name, module in self.layers.items():
                module.weight.mul_(self.weight_masks[name])

    def on_batch_end(self) -> None:
        self.batches += 1

    def on_epoch_end(self, epoch: int) -> dict[str, Any]:
        if epoch < self.config.start_epoch:
            return {}
        pruned = {}
        for name, module in self.layers.items():
            mask = self.weight_masks[name]
            alive = module.weight.detach().abs()[mask]
            k = int(alive.numel() * self.config.fraction)
            if k:
                threshold = alive.kthvalue(k).values
                mask &= module.weight.detach().abs() > threshold
                with torch.no_grad():
                    module.weight.mul_(mask)
            pruned[name] = int((~mask).sum())
        self.steps += 1
        return {"shrink": pruned}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "steps": self.steps, "batches": self.batches,
                "masks": dict(self.weight_masks)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.steps, self.batches = state["steps"], state["batches"]
        self.weight_masks = {k: v.clone() for k, v in state["masks"].items()}


@pytest.fixture
def shrink_method(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register the test pruner for one test only."""
    monkeypatch.setitem(pruning_base._REGISTRY, "shrink",
                        (ShrinkPruner, ShrinkConfig, "test-only magnitude pruner"))
    return "shrink"
