"""DPAP and SD-SNN on SpikingJelly models through the public API (build_pruner), measured
and compacted: multi-step ``activation_based`` layers, IF/LIF nodes, BatchNorm, max and
average pooling. Skipped when spikingjelly is not installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from devprune.compact import compact
from devprune.data import default_root
from devprune.data.fetcher import is_present
from devprune.measure import static_metrics, workload_metrics
from devprune.pruning import build_pruner
from devprune.structure import discover

pytest.importorskip("spikingjelly.activation_based")

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "spikingjelly_mnist.py"


def _example_module():
    spec = importlib.util.spec_from_file_location("spikingjelly_mnist", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLE = _example_module()
SETTINGS = {
    "dpap": {"every_batches": 2, "start": 0, "e0": 0, "conv_reserve": 2.0,
             "fc_neuron_reserve": 2.0, "fc_synapse_reserve": 2.0},
    "sdsnn": {"count_threshold": 1, "conv_rate": 20.0},
}


def small_csnn() -> nn.Module:
    return EXAMPLE.SpikingJellyCSNN(time_steps=3, c1=6, c2=8, hidden=24, side=16)


def test_structure_of_a_spikingjelly_csnn_is_found_by_tracing() -> None:
    model = small_csnn()
    structure = discover(model, torch.rand(4, 1, 16, 16))
    assert structure.exact
    by_name = {la.name: la for la in structure.layers}
    assert list(by_name) == ["net.0", "net.4", "net.9", "net.11"]
    assert by_name["net.0"].norm_name == "net.1" and by_name["net.0"].post_name == "net.2"
    assert by_name["net.4"].norm_name == "net.5" and by_name["net.4"].post_name == "net.6"
    assert [(p.name, p.block) for p in by_name["net.9"].producers] == [("net.4", 16)]
    assert by_name["net.11"].is_output


def _train(model: nn.Module, method: str, epochs: int = 5):
    torch.manual_seed(0)
    x, y = torch.rand(32, 1, 16, 16), torch.randint(0, 10, (32,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    pruner = build_pruner(method, model, x, SETTINGS[method])
    pruner.bind_optimizer(optimizer)
    modules = dict(model.named_modules())
    for epoch in range(epochs):
        for _ in range(2):
            pruner.on_batch_start()
            loss = nn.functional.mse_loss(model(x), nn.functional.one_hot(y, 10).float())
            optimizer.zero_grad()
            loss.backward()
            pruner.on_after_backward()
            optimizer.step()
            pruner.on_after_step()
            for name in pruner.masks.names():  # hard masks: pruned weights stay exactly 0
                assert torch.all(modules[name].weight[~pruner.masks[name]] == 0)
            pruner.on_batch_end()
        pruner.on_epoch_end(epoch)
    return pruner, x, y


@pytest.mark.parametrize("method", ["dpap", "sdsnn"])
def test_spikingjelly_model_is_pruned_measured_and_compacted(method: str) -> None:
    torch.manual_seed(1)
    model = small_csnn()
    pruner, x, y = _train(model, method)
    masks = pruner.masks
    modules = dict(model.named_modules())
    dead = {n: int((~masks.unit_alive(n)).sum()) for n in masks.names()}
    assert sum(dead.values()) > 0, dead
    for name, norm in (("net.0", "net.1"), ("net.4", "net.5")):  # coupled BN of dead units
        alive = masks.unit_alive(name)
        assert torch.all(modules[norm].weight[~alive] == 0)
        assert torch.all(modules[norm].bias[~alive] == 0)

    model.eval()
    static = static_metrics(model, masks)
    # kept = mask keeps it and the weight is non-zero (columns of dead inputs are zeroed)
    kept = sum(int((masks[n] & (modules[n].weight != 0)).sum()) for n in masks.names())
    total = sum(masks[n].numel() for n in masks.names())
    assert static["Connectivity"] < 1.0
    assert static["Connectivity"] == pytest.approx(kept / total)
    work = workload_metrics(model, [(x, y)], max_batches=1)
    assert work["FiringRate"] > 0
    assert work["SynapticOperations"]["Effective_ACs"] > 0  # spikes into net.4, net.9, net.11
    assert work["connections"]["net.0"]["input"] == "real"  # direct encoding: MACs
    assert work["connections"]["net.4"]["input"] == "spikes"
    assert all(layer["counted"] for layer in work["membranes"].values())
    assert 0 < work["MembraneUpdates"] < work["NeuronOperations"]["Dense"] / 4

    small = compact(model, masks, x)
    with torch.no_grad():
        assert torch.equal(model(x), small(x))
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    small_modules = dict(small.named_modules())
    for name in masks.names():
        assert small_modules[name].weight.shape[0] <= masks.unit_alive(name).numel()
    assert small_modules["net.9"].weight.shape[0] == max(1, int(masks.unit_alive("net.9").sum()))


@pytest.mark.mnist
@pytest.mark.slow
def test_spikingjelly_csnn_learns_real_mnist_with_dpap_in_a_user_loop() -> None:
    if not is_present("mnist", default_root()):
        pytest.skip("MNIST not present; run `devprune data fetch mnist`")
    torch.set_num_threads(1)
    result = EXAMPLE.run("dpap", train_samples=2000, test_samples=1000, epochs=2)
    assert result["test_accuracy"] > 0.75, result["history"]
    assert result["connectivity"] < 0.7
    alive, total = result["units_alive"]["net.9"]
    assert alive < total
    assert result["max_abs_pruned_weight"] == 0.0
    assert result["compacted_outputs_equal"]
    assert result["compacted_test_accuracy"] == result["test_accuracy"]
    assert result["params_compacted"] < result["params"]
