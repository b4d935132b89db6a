"""One connectivity (defect D3 of issue 19): the ``connectivity`` a pruner returns each epoch
is ``static_metrics``' ``Connectivity`` of the same model; the entries the masks keep are
reported beside it as ``mask_connectivity``. On a conv net they differ: a dead filter's
columns in the next layer are zeroed in hard mode but still set in that layer's mask."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from devprune.measure import static_metrics
from devprune.pruning import build_pruner
from tests.pruning.loop import train_batches

snn = pytest.importorskip("snntorch")


class LeakyCSNN(nn.Module):
    """An snnTorch CSNN in the tutorial style: conv + Leaky, flatten, linear + Leaky."""

    def __init__(self, steps: int = 3) -> None:
        super().__init__()
        self.steps = steps
        self.conv1, self.lif1 = nn.Conv2d(1, 8, 3, padding=1), snn.Leaky(beta=0.9)
        self.fc1, self.lif2 = nn.Linear(8 * 6 * 6, 20), snn.Leaky(beta=0.9)
        self.fc2, self.lif3 = nn.Linear(20, 4), snn.Leaky(beta=0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem1, mem2, mem3 = (lif.init_leaky() for lif in (self.lif1, self.lif2, self.lif3))
        rates = []
        for _ in range(self.steps):
            spk1, mem1 = self.lif1(self.conv1(x), mem1)
            spk2, mem2 = self.lif2(self.fc1(spk1.flatten(1)), mem2)
            spk3, mem3 = self.lif3(self.fc2(spk2), mem3)
            rates.append(spk3)
        return torch.stack(rates).mean(0)


@pytest.mark.parametrize("method", ["dpap", "sdsnn", "magnitude"])
def test_pruner_connectivity_is_static_metrics_connectivity(method: str) -> None:
    torch.manual_seed(0)
    model = LeakyCSNN()
    x = torch.rand(8, 1, 6, 6) * 2
    settings = {
        "dpap": {"every_batches": 2, "start": 0, "e0": 0, "conv_reserve": 0.2,
                 "fc_neuron_reserve": 0.5, "fc_synapse_reserve": 0.5},
        "sdsnn": {},
        "magnitude": {"target": 0.5, "granularity": "unit", "schedule": "oneshot"},
    }[method]
    pruner = build_pruner(method, model, x, settings)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    pruner.bind_optimizer(optimizer)
    for epoch in range(3):
        train_batches(model, pruner, optimizer, x, 4, lambda out: (out - 0.3).pow(2).mean())
        events = pruner.on_epoch_end(epoch)
        static = static_metrics(model, pruner.masks)
        if "connectivity" in events:
            assert events["connectivity"] == static["Connectivity"], (epoch, events)
            assert events["mask_connectivity"] == pytest.approx(pruner.masks.connectivity())
        assert pruner.masks.weight_connectivity() == static["Connectivity"]
        for name, layer in (events.get("layers") or {}).items():
            assert layer["connectivity"] == static["layers"][name]["connectivity"], name
    if method == "dpap":  # filters died: their fc1 columns are gone but still in fc1's mask
        assert int((~pruner.masks.unit_alive("conv1")).sum()) > 0
        assert events["connectivity"] < events["mask_connectivity"]
