"""NIR export of pruned SpikingJelly models: multi-step activation_based layers, BatchNorm
(folded), LIF/IF nodes, average pooling, the ``unsqueeze(0).repeat(T, ...)`` direct
encoding. Skipped without spikingjelly."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest
import torch
from torch import nn

from devprune.compact import compact
from devprune.errors import ModelStructureError
from devprune.export import compare_spikes, to_nir
from tests.compact.helpers import random_masks, randomise_batchnorm

nir = pytest.importorskip("nir")
pytest.importorskip("nirtorch")
sj = pytest.importorskip("spikingjelly.activation_based")
from spikingjelly.activation_based import layer, neuron  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "spikingjelly_mnist.py"
HAS_SNNTORCH = importlib.util.find_spec("snntorch") is not None


def _csnn(all_lif: bool = False, max_pool: bool = False) -> nn.Module:
    spec = importlib.util.spec_from_file_location("spikingjelly_mnist", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    model = module.SpikingJellyCSNN(time_steps=3, c1=6, c2=8, hidden=24, side=16)
    if not max_pool:
        model.net[3] = layer.AvgPool2d(2, step_mode="m")
    if all_lif:
        model.net[2] = neuron.LIFNode(tau=2.0, step_mode="m")
    model.eval()
    randomise_batchnorm(model)
    return model


def _roundtrip(graph):
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    return nir.read(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("all_lif", [False, True])
def test_pruned_spikingjelly_csnn_exports_with_equal_spikes(all_lif: bool) -> None:
    model = _csnn(all_lif)
    x = torch.rand(4, 1, 16, 16) * 3
    masks = random_masks(model, x, unit_density=0.6)
    graph = _roundtrip(to_nir(model, masks, x))
    assert str(graph.metadata["encoding"]) == "direct"
    assert int(graph.metadata["time_steps"]) == 3
    assert not any(name in graph.nodes for name in ("net.1", "net.5"))  # BN folded
    fc = graph.nodes["net.9"]
    assert int(fc.metadata["units"]) < int(fc.metadata["units_dense"]) == 24
    kinds = [type(graph.nodes[n]).__name__ for n in ("net.2", "net.6", "net.10", "net.12")]
    assert kinds == (["LIF"] * 4 if all_lif else ["IF", "LIF", "LIF", "LIF"])
    results = compare_spikes(compact(model, masks, x), graph, x)
    assert results[0].exact and results[0].total > 0, results[0].line()
    if HAS_SNNTORCH and all_lif:
        assert results[1].exact, results[1].line()


def test_a_threshold_tie_fires_as_in_spikingjelly() -> None:
    """SpikingJelly fires on H >= v_threshold, NIR on v > v_threshold: the file holds the
    float32 just below, so a membrane exactly at the threshold still fires."""
    fc = layer.Linear(2, 2, bias=False, step_mode="m")
    with torch.no_grad():
        fc.weight.copy_(torch.eye(2))
    model = nn.Sequential(fc, neuron.IFNode(v_threshold=1.0, step_mode="m"))
    x = torch.ones(3, 1, 2)  # H = 1.0 exactly at the first step
    with torch.no_grad():
        assert model(x)[0].sum() == 2  # SpikingJelly fires
    model[1].reset()
    graph = _roundtrip(to_nir(model, None, x))
    assert float(graph.nodes["1"].v_threshold[0]) < 1.0
    assert compare_spikes(model, graph, x, snntorch=False)[0].exact


def test_max_pooling_and_soft_reset_are_refused() -> None:
    x = torch.rand(2, 1, 16, 16)
    with pytest.raises(ModelStructureError, match=r"layer net\.3 \(MaxPool2d\)"):
        to_nir(_csnn(max_pool=True), None, x)
    model = _csnn()
    model.net[6] = neuron.LIFNode(v_reset=None, step_mode="m")
    with pytest.raises(ModelStructureError, match=r"net\.6 .*soft reset"):
        to_nir(model, None, x)


def test_state_left_by_an_earlier_batch_does_not_matter() -> None:
    model = _csnn(all_lif=True)
    with torch.no_grad():
        model.net(torch.rand(3, 7, 1, 16, 16))  # no reset: nodes keep a batch-7 state
    x = torch.rand(2, 1, 16, 16) * 3
    graph = to_nir(model, None, x)
    assert compare_spikes(model, graph, x, snntorch=False)[0].exact
