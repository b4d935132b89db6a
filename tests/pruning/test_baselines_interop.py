"""Baselines on a model written with snnTorch the way its tutorials write it (nn.Linear +
snn.Leaky stepped in a Python loop): they find the layers, prune to the target and keep the
pruned weights at zero while it trains."""

from __future__ import annotations

import pytest
import torch

from devprune.pruning import build_pruner
from tests.pruning.loop import train_batches
from tests.pruning.test_dpap_interop import LeakyMLP

pytest.importorskip("snntorch")


@pytest.mark.parametrize("method, settings", [
    ("magnitude", {"target": 0.25, "start": 0, "end": 1}),
    ("magnitude", {"target": 0.5, "granularity": "unit", "schedule": "oneshot", "end": 0}),
    ("random", {"target": 0.25, "start": 0, "end": 1}),
    ("lth", {"target": 0.25, "rounds": 2}),
    ("rigl", {"target": 0.25, "every_batches": 2, "end": 4}),
])
def test_baseline_prunes_an_snntorch_model(method: str, settings: dict) -> None:
    torch.manual_seed(0)
    model = LeakyMLP()
    x = torch.rand(16, 12) * 2
    pruner = build_pruner(method, model, x, settings)
    assert [la.name for la in pruner.layers] == ["fc1"]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    pruner.bind_optimizer(opt)
    for epoch in range(3):
        train_batches(model, pruner, opt, x, 4, lambda out: (out - 0.3).pow(2).mean())
        pruner.on_epoch_end(epoch)
    mask = pruner.masks["fc1"]
    assert int(mask.sum()) == round(settings["target"] * mask.numel())
    assert bool((model.fc1.weight[~mask] == 0).all())
