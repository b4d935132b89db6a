"""MembraneUpdates and NeuronOperations: equal to NeuroBench 2.3.0's on snnTorch networks, and
on devprune neurons equal to NeuroBench's numbers for the snnTorch twin that computes the
same membranes."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from devprune.measure.neurons import membrane_metrics, replay_membrane_updates
from devprune.snn import layers as ms
from devprune.snn.neurons import IF, LIF, STBPLIF

neurobench = pytest.importorskip("neurobench")
snntorch = pytest.importorskip("snntorch")

from neurobench.benchmarks import Benchmark  # noqa: E402
from neurobench.metrics.workload import MembraneUpdates, NeuronOperations  # noqa: E402
from neurobench.models import SNNTorchModel  # noqa: E402


def spike_data(samples: int = 10, steps: int = 5) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return (torch.rand(samples, steps, 16, generator=gen) < 0.4).float()


def run_neurobench(net: nn.Module, data: torch.Tensor) -> dict:
    loader = DataLoader(TensorDataset(data, torch.zeros(len(data))), batch_size=4)
    return Benchmark(SNNTorchModel(net), loader, [], [],
                     [[], [MembraneUpdates, NeuronOperations]]).run(quiet=True)


class SnnTorchLoop(nn.Module):
    """SNNTorchModel's loop as a module: reset, then one call per step (input [B, T, ...])."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        snntorch.utils.reset(self.net)
        return torch.stack([self.net(x[:, t])[0] for t in range(x.shape[1])], dim=1)


def leaky_net(reset: str = "subtract", beta: float = 0.8) -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(16, 12), snntorch.Leaky(beta=beta, init_hidden=True, reset_mechanism=reset),
        nn.Linear(12, 3), snntorch.Leaky(beta=beta, init_hidden=True, output=True,
                                         reset_mechanism=reset),
    )
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[0].weight[:4] = 0  # four pruned units: their membranes never move after step 0
        net[0].bias[:4] = 0
    return net


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_snntorch_network_equals_neurobench(reset: str) -> None:
    net, data = leaky_net(reset), spike_data()
    theirs = run_neurobench(net, data)
    ours = membrane_metrics(SnnTorchLoop(net), [(data[i:i + 4], None)
                                                for i in range(0, len(data), 4)])
    assert ours["MembraneUpdates"] == pytest.approx(theirs["MembraneUpdates"], rel=1e-12)
    assert ours["NeuronOperations"]["Effective"] == pytest.approx(
        theirs["NeuronOperations"]["Effective Neuron Ops"], rel=1e-12)
    assert ours["NeuronOperations"]["Dense"] == pytest.approx(
        theirs["NeuronOperations"]["Neuron Dense Ops"], rel=1e-12)
    # the pruned units' membranes stay at 0: only the first step counts for them
    steps, hidden = data.shape[1], ours["membranes"]["net.1"]["MembraneUpdates"]
    assert hidden <= 12 * steps - 4 * (steps - 1)


class DevpruneTwin(nn.Module):
    """The same network with devprune multi-step layers and STBP neurons (u = beta u + x,
    reset to 0): its membranes are snnTorch Leaky's with reset_mechanism='zero' and no
    reset delay."""

    def __init__(self, net: nn.Sequential, beta: float) -> None:
        super().__init__()
        self.fc1, self.fc2 = ms.Linear(16, 12), ms.Linear(12, 3)
        self.fc1.load_state_dict(net[0].state_dict())
        self.fc2.load_state_dict(net[2].state_dict())
        self.lif1, self.lif2 = STBPLIF(decay=beta, threshold=1.0), STBPLIF(decay=beta,
                                                                          threshold=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif2(self.fc2(self.lif1(self.fc1(x.transpose(0, 1))))).mean(0)


def test_devprune_neurons_equal_neurobench_on_the_snntorch_twin() -> None:
    beta = 0.8
    net = nn.Sequential(
        nn.Linear(16, 12), snntorch.Leaky(beta=beta, init_hidden=True, reset_mechanism="zero",
                                          reset_delay=False),
        nn.Linear(12, 3), snntorch.Leaky(beta=beta, init_hidden=True, output=True,
                                         reset_mechanism="zero", reset_delay=False),
    )
    torch.manual_seed(0)
    with torch.no_grad():
        net[0].weight.mul_(3.0)
    data = spike_data()
    theirs = run_neurobench(net, data)
    ours = membrane_metrics(DevpruneTwin(net, beta), [(data[i:i + 4], None)
                                                      for i in range(0, len(data), 4)])
    assert ours["MembraneUpdates"] == pytest.approx(theirs["MembraneUpdates"], rel=1e-12)
    assert ours["NeuronOperations"]["Effective"] == pytest.approx(
        theirs["NeuronOperations"]["Effective Neuron Ops"], rel=1e-12)
    assert ours["NeuronOperations"]["Dense"] == pytest.approx(
        theirs["NeuronOperations"]["Neuron Dense Ops"], rel=1e-12)
    assert set(ours["membranes"]) == {"lif1", "lif2"}


@pytest.mark.parametrize("neuron", [STBPLIF(), LIF(), IF()])
def test_replay_counts_first_step_then_changed_membranes(neuron: nn.Module) -> None:
    x = torch.zeros(4, 2, 3)
    x[0] = 1.0  # a kick at the first step, then nothing
    updates, steps = replay_membrane_updates(neuron, x)
    assert steps == 24
    # step 0 counts all 6; afterwards only leaking (non-zero, not reset) membranes change
    with torch.no_grad():
        spikes = neuron(x)
    fired = bool(spikes[0].all())
    if isinstance(neuron, IF) or fired:  # IF never leaks; a reset membrane stays at 0
        assert updates == 6
    else:
        assert updates == 6 + 3 * 6


def test_untracked_neurons_are_listed_not_counted() -> None:
    from devprune.snn.base import BaseNeuron

    class Opaque(BaseNeuron):
        def multi_step(self, x: torch.Tensor) -> torch.Tensor:
            return (x > 0.5).float()

    model = nn.Sequential(ms.Linear(4, 3), Opaque())
    result = membrane_metrics(model, [torch.rand(2, 5, 4)])
    assert result["membranes"]["1"]["counted"] is False
    assert result["MembraneUpdates"] == 0


def test_workload_metrics_reports_the_same_numbers() -> None:
    from devprune.measure import workload_metrics

    net, data = leaky_net(), spike_data()
    batches = [(data[i:i + 4], None) for i in range(0, len(data), 4)]
    alone = membrane_metrics(SnnTorchLoop(net), batches)
    work = workload_metrics(SnnTorchLoop(net), batches)
    assert work["MembraneUpdates"] == alone["MembraneUpdates"] > 0
    assert work["NeuronOperations"] == alone["NeuronOperations"]
    assert work["membranes"]["net.1"]["kind"] == "Leaky"


def test_spikingjelly_nodes_are_counted_like_their_devprune_twins() -> None:
    sj = pytest.importorskip("spikingjelly.activation_based.neuron")
    functional = pytest.importorskip("spikingjelly.activation_based.functional")
    torch.manual_seed(0)
    current = torch.rand(6, 4, 10) * 1.5
    current[:, :, :3] = 0  # three silent neurons: only the first step counts for them

    class Wrap(nn.Module):
        def __init__(self, node: nn.Module, reset: bool) -> None:
            super().__init__()
            self.node, self.reset = node, reset

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.reset:
                functional.reset_net(self)
            return self.node(x.transpose(0, 1))

    batches = [current.transpose(0, 1)]
    pairs = [(sj.LIFNode(tau=2.0, step_mode="m"), LIF(tau=2.0, threshold=1.0)),
             (sj.IFNode(step_mode="m"), IF(threshold=1.0))]
    for node, twin in pairs:
        theirs = membrane_metrics(Wrap(node, True), batches)
        ours = membrane_metrics(Wrap(twin, False), batches)
        assert theirs["membranes"]["node"]["counted"]
        assert theirs["MembraneUpdates"] == ours["MembraneUpdates"] > 0
        assert theirs["NeuronOperations"] == ours["NeuronOperations"]
        assert ours["MembraneUpdates"] <= (6 * 10 - 3 * 5)
