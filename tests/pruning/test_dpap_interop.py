"""DPAP on models built outside devprune: snnTorch neurons in a Python time loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from devprune.pruning import build_pruner

snn = pytest.importorskip("snntorch")


class LeakyMLP(nn.Module):
    """The snnTorch tutorial pattern: nn.Linear + snn.Leaky, stepped in forward."""

    def __init__(self, steps: int = 4) -> None:
        super().__init__()
        self.steps = steps
        self.fc1, self.lif1 = nn.Linear(12, 10), snn.Leaky(beta=0.9)
        self.fc2, self.lif2 = nn.Linear(10, 3), snn.Leaky(beta=0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spikes = []
        for _ in range(self.steps):
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spikes.append(spk2)
        return torch.stack(spikes).mean(0)


def test_snntorch_model_records_spikes_and_gets_pruned():
    torch.manual_seed(0)
    model = LeakyMLP()
    x = torch.rand(16, 12) * 2
    pruner = build_pruner("dpap", model, x, {
        "every_batches": 2, "start": 0, "e0": 0,
        "fc_neuron_reserve": 0.5, "fc_synapse_reserve": 0.5,
    })
    assert [la.name for la in pruner.layers] == ["fc1"]
    assert pruner.recorder.taps[0].post_module == "lif1"
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    pruner.bind_optimizer(opt)
    spikes = []
    model.lif1.register_forward_hook(lambda m, i, o: spikes.append(o[0].detach()) and None)
    for _ in range(6):
        spikes.clear()
        pruner.on_batch_start()
        loss = (model(x) - 0.3).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        pruner.on_after_backward()
        opt.step()
        pruner.on_after_step()
        recorded = pruner.recorder.taps[0].post.result().clone()
        pruner.on_batch_end()
    # the per-call trace equals the trace of the stacked per-step spikes (last readout)
    stacked = torch.stack(spikes)
    weights = torch.tensor([0.5 ** (3 - t) / 4 for t in range(4)])
    assert torch.allclose(recorded, torch.tensordot(weights, stacked, dims=1), atol=1e-6)
    events = pruner.on_epoch_end(0)
    assert events["pruning_steps"] == 3
    assert pruner.masks.connectivity() < 1.0
    assert torch.all(model.fc1.weight[~pruner.masks["fc1"]] == 0)
