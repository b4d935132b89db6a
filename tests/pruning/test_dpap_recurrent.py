"""DPAP on recurrent spiking layers (snnTorch ``RLeaky``): the recurrent weight's presynaptic
activity is the layer's own previous-step spikes, a neuron is pruned with its feed-forward
row and its recurrent row and column, and the pruned model compacts; plus the MNIST example
in a user's loop (experiments/rleaky_mnist.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from devprune.compact import compact
from devprune.data import default_root
from devprune.data.fetcher import is_present
from devprune.pruning import build_pruner
from tests.core.test_recurrent import RLeakyNet, hidden_spikes
from tests.pruning.loop import train_batches

snn = pytest.importorskip("snntorch")

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "rleaky_mnist.py"
SETTINGS = {"every_batches": 2, "start": 0, "e0": 0,
            "fc_neuron_reserve": 0.5, "fc_synapse_reserve": 0.5}


def _example_module():
    spec = importlib.util.spec_from_file_location("rleaky_mnist", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recurrent_pre_activity_is_the_previous_step_spikes() -> None:
    torch.manual_seed(0)
    model = RLeakyNet(steps=4, hidden=8)
    x = torch.rand(16, 5) * 2
    pruner = build_pruner("dpap", model, x, SETTINGS)
    assert [la.name for la in pruner.layers] == ["fc1", "lif1.recurrent"]
    assert [g.members for g in pruner.unit_groups] == [["fc1", "lif1.recurrent"]]
    tap = next(t for t in pruner.recorder.taps if t.layer == "lif1.recurrent")
    assert (tap.pre_module, tap.post_module) == ("lif1.recurrent", "lif1")
    spikes = []
    model.lif1.register_forward_hook(lambda m, i, o: spikes.append(o[0].detach()) and None)
    pruner.on_batch_start()
    model(x)
    pre, post = tap.pre.result().clone(), tap.post.result().clone()
    pruner.on_batch_end()
    stacked = torch.stack(spikes)  # [4, 16, 8]
    previous = torch.cat([torch.zeros_like(stacked[:1]), stacked[:-1]])  # step t sees t-1
    weights = torch.tensor([0.5 ** (3 - t) / 4 for t in range(4)])  # 'last' trace readout
    assert torch.allclose(pre, torch.tensordot(weights, previous, dims=1), atol=1e-6)
    assert torch.allclose(post, torch.tensordot(weights, stacked, dims=1), atol=1e-6)
    assert not torch.allclose(pre, post)


def test_dpap_prunes_recurrent_neurons_whole_and_the_result_compacts() -> None:
    torch.manual_seed(0)
    model = RLeakyNet(steps=4, hidden=12)
    x = torch.rand(16, 5) * 2
    pruner = build_pruner("dpap", model, x, SETTINGS)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    pruner.bind_optimizer(optimizer)
    for epoch in range(3):
        train_batches(model, pruner, optimizer, x, 4, lambda out: (out - 0.3).pow(2).mean())
        events = pruner.on_epoch_end(epoch)
    masks = pruner.masks
    dead = ~masks.unit_alive("fc1")
    assert 0 < int(dead.sum()) < 12, events
    assert torch.equal(masks.unit_alive("lif1.recurrent"), ~dead)  # pruned as one unit
    rec = model.lif1.recurrent
    assert torch.all(rec.weight[dead] == 0) and torch.all(rec.weight[:, dead] == 0)
    assert torch.all(rec.bias[dead] == 0) and torch.all(model.fc2.weight[:, dead] == 0)
    assert events["layers"]["lif1.recurrent"]["units_alive"] == int((~dead).sum())
    for name in ("fc1", "lif1.recurrent"):  # the unit steps' counts of the rows they cleared
        assert pruner.synapses_removed[name] == int(torch.count_nonzero(~masks[name])), name
    model.eval()
    fired = hidden_spikes(model, x).sum((0, 1)) > 0
    assert not fired[dead].any()  # no neuron counted dead fires through the recurrence
    small = compact(model, masks, x)
    alive = int((~dead).sum())
    assert small.lif1.recurrent.weight.shape == (alive, alive)
    with torch.no_grad():
        assert torch.equal(small(x), model(x))


@pytest.mark.mnist
@pytest.mark.slow
def test_rleaky_network_learns_real_mnist_with_dpap_in_a_user_loop() -> None:
    if not is_present("mnist", default_root()):
        pytest.skip("MNIST not present; run `devprune data fetch mnist`")
    torch.set_num_threads(1)
    result = _example_module().run(train_samples=2000, test_samples=1000, epochs=2, hidden=64,
                                   settings={"fc_neuron_reserve": 2.0,
                                             "fc_synapse_reserve": 2.0})
    assert result["test_accuracy"] > 0.6, result["history"]
    assert result["connectivity"] < 0.7
    alive, total = result["units_alive"]["fc1"]
    assert alive < total and result["units_alive"]["lif1.recurrent"][0] == alive
    assert result["dead_but_firing"] == 0
    assert result["max_abs_pruned_weight"] == 0.0
    assert result["compacted_outputs_equal"]
    assert result["compacted_shapes"]["lif1.recurrent"] == [alive, alive]
    assert result["compacted_test_accuracy"] == result["test_accuracy"]
    assert result["params_compacted"] < result["params"]
    assert result["recurrent_ACs_per_sample"] > 0
