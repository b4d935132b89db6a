"""NIR export: every zoo SNN NIR can express, pruned and compacted, runs back with the same
spikes (nirtorch with NIR's equations, and snnTorch's importer); the rest is refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from devprune.errors import ModelStructureError
from devprune.export import EulerNeuron, compare_spikes, neuron_parameters, to_nir
from devprune.models import build_model
from devprune.snn.neurons import IF, LIF, PLIF, STBPLIF
from tests.compact.helpers import build_case, random_masks

nir = pytest.importorskip("nir")
pytest.importorskip("nirtorch")
HAS_SNNTORCH = True
try:
    import snntorch  # noqa: F401
except ImportError:
    HAS_SNNTORCH = False

EXPRESSIBLE = ["snn-mlp", "snn-small", "snn-sew-resnet"]


def roundtrip(graph):
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    return nir.read(io.BytesIO(buffer.getvalue()))


def scaled_input(example: torch.Tensor) -> torch.Tensor:
    return example * 3  # enough drive for every layer to fire at default init


@pytest.mark.parametrize("name", EXPRESSIBLE)
def test_pruned_zoo_snn_round_trips_with_equal_spikes(name: str) -> None:
    model, example = build_case(name)
    example = scaled_input(torch.cat([example, example.flip(0)]))
    masks = random_masks(model, example, unit_density=0.5, synapse_density=0.7)
    graph = roundtrip(to_nir(model, masks, example))

    weights = {n: node for n, node in graph.nodes.items() if "synapses" in node.metadata}
    assert weights, "weight nodes carry connectivity metadata"
    for layer_name, node in weights.items():
        meta = node.metadata
        module = dict(model.named_modules())[layer_name]
        assert str(meta["devprune_name"]) == layer_name
        assert int(meta["units_dense"]) == module.weight.shape[0]
        assert int(meta["synapses_dense_total"]) == module.weight.numel()
        assert int(meta["units"]) == node.weight.shape[0]
        assert int(meta["synapses"]) == int(np.count_nonzero(node.weight))
        assert float(meta["connectivity"]) == pytest.approx(
            int(meta["synapses"]) / node.weight.size)
        if layer_name in masks.names() and not masks.structure[layer_name].is_output:
            assert int(meta["units"]) < int(meta["units_dense"])  # compacted before export
    assert int(graph.metadata["time_steps"]) == model.time_steps
    assert float(graph.metadata["dt"]) == pytest.approx(1e-4)
    assert str(graph.metadata["encoding"]) in ("direct", "bernoulli")
    assert "mean" in str(graph.metadata["readout"])

    small = _compacted(model, masks, example)
    results = compare_spikes(small, graph, example)
    ours = results[0]
    assert ours.runtime == "nirtorch" and ours.exact, ours.line()
    assert ours.total > 0 and len(ours.layers) == sum(
        isinstance(n, (nir.LIF, nir.IF)) for n in graph.nodes.values())
    if HAS_SNNTORCH:
        assert results[1].runtime == "snntorch" and results[1].exact, results[1].line()


def _compacted(model, masks, example):
    from devprune.compact import compact

    return compact(model, masks, example)


@pytest.mark.parametrize("name", EXPRESSIBLE)
def test_the_comparison_sees_spikes_and_catches_a_wrong_graph(name: str) -> None:
    model, example = build_case(name, seed=1)
    example = scaled_input(example)
    graph = roundtrip(to_nir(model, None, example))
    from devprune.export.nir_run import devprune_spikes

    _, _, spikes = devprune_spikes(model, example, graph)
    rates = {n: float(s.mean()) for n, s in spikes.items()}
    assert max(rates.values()) > 0.05 and min(rates.values()) < 0.95, rates  # non-trivial
    # move the threshold of a layer that fires sometimes: the comparison must notice
    mid = next(n for n, r in rates.items() if 0.02 < r < 0.98)
    graph.nodes[mid].v_threshold = graph.nodes[mid].v_threshold * 1.5
    result = compare_spikes(model, graph, example, snntorch=False)[0]
    assert not result.exact and result.layers[mid][0] < result.layers[mid][1]


def test_batchnorm_is_folded_into_the_conv_before_it() -> None:
    model, example = build_case("snn-sew-resnet")
    graph = to_nir(model, None, scaled_input(example))
    assert not any("bn" in n for n in graph.nodes)
    stem = graph.nodes["features.stem.conv"]
    assert str(stem.metadata["folded_batch_norm"]) == "features.stem.bn"
    bn, conv = model.features.stem.bn, model.features.stem.conv
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    expected = conv.weight * scale.view(-1, 1, 1, 1)
    assert np.allclose(stem.weight, expected.detach().numpy(), atol=1e-6)
    assert np.allclose(stem.bias, (bn.bias - bn.running_mean * scale).detach().numpy(),
                       atol=1e-6)


def test_residual_adds_become_several_incoming_edges() -> None:
    model, example = build_case("snn-sew-resnet")
    graph = to_nir(model, None, scaled_input(example))
    into_pool = sorted(src for src, dst in graph.edges if dst == "features.pool")
    assert into_pool == ["features.stage3_1.conv2.spike", "features.stage3_1.shortcut.spike"]
    into_block2 = sorted(src for src, dst in graph.edges
                         if dst == "features.stage2_1.conv1.conv")
    assert into_block2 == ["features.stage1_1.conv2.spike", "features.stem.spike"]
    assert isinstance(graph.nodes["features.pool"], nir.AvgPool2d)


@pytest.mark.parametrize(("neuron", "kwargs"), [
    (STBPLIF, {"decay": 0.2, "threshold": 0.5}),
    (STBPLIF, {"decay": 0.7, "threshold": 0.3}),
    (STBPLIF, {"decay": 1.0, "threshold": 0.5}),
    (LIF, {"tau": 2.0, "threshold": 0.5}),
    (LIF, {"tau": 3.0, "threshold": 0.4}),
    (PLIF, {"tau_init": 2.7, "threshold": 1.0}),
    (IF, {"threshold": 1.0}),
])
@pytest.mark.parametrize("dt", [1e-4, 1e-3, 1.0])
def test_euler_step_of_the_nir_node_is_the_devprune_neuron(neuron, kwargs, dt) -> None:
    """The discretisation, independent of any graph: NIR's equations at dt, integrated with
    forward Euler, give devprune's spikes on a long random current."""
    cell = neuron(**kwargs)
    kind, params = neuron_parameters("cell", cell, dt)
    shape = (500,)
    node_cls = nir.IF if kind == "if" else nir.LIF
    fields = {k: np.full(shape, v, dtype=np.float32) for k, v in params.items()}
    node = node_cls(**fields)
    euler = EulerNeuron(node, dt)
    torch.manual_seed(0)
    current = torch.rand(60, *shape) * 2.5 * cell.threshold * (0.3 if kind == "if" else 1)
    with torch.no_grad():
        expected = cell(current)
    state, got = None, []
    for x_t in current:
        z, state = euler(x_t, state)
        got.append(z)
    got = torch.stack(got)
    assert 0.05 < float(expected.mean()) < 0.95
    assert torch.equal(got, expected)
    if kind == "lif":  # the continuous constants themselves
        tau, r = float(fields["tau"][0]), float(fields["r"][0])
        assert np.float32(1 - dt / tau) == pytest.approx(_keep(cell), rel=1e-6)
        assert dt * r / tau == pytest.approx(_gain(cell), rel=1e-6)


def _keep(cell) -> float:
    if isinstance(cell, STBPLIF):
        return cell.decay
    if isinstance(cell, PLIF):
        return 1 - float(torch.sigmoid(cell.w.detach()))
    return 1 - 1 / cell.tau


def _gain(cell) -> float:
    if isinstance(cell, STBPLIF):
        return 1.0
    if isinstance(cell, PLIF):
        return float(torch.sigmoid(cell.w.detach()))
    return 1 / cell.tau


@pytest.mark.parametrize("neuron", ["if", "lif", "plif"])
def test_other_neurons_export_and_match(neuron: str) -> None:
    torch.manual_seed(2)
    model = build_model("snn-mlp", in_shape=(1, 6, 6), num_classes=4, time_steps=5,
                        hidden=(30,), neuron=neuron)
    x = torch.rand(3, 1, 6, 6) * 4
    graph = roundtrip(to_nir(model, None, x, dt=1e-3))
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert ("IF" if neuron == "if" else "LIF") in kinds
    hidden = graph.nodes["features.layer1.spike"].metadata
    assert str(hidden["devprune_class"]) == {"if": "IF", "lif": "LIF", "plif": "PLIF"}[neuron]
    if neuron == "plif":  # its learnable ATan only shapes gradients: recorded, not exported
        assert "ATan" in str(hidden["surrogate_not_exported"])
    results = compare_spikes(model, graph, x)
    assert results[0].exact, results[0].line()
    if HAS_SNNTORCH:  # its importer assumes dt=1e-4 and maps IF to a leaky neuron
        assert not results[1].ran and results[1].error


def test_if_graph_is_not_run_by_snntorch_with_the_reason() -> None:
    pytest.importorskip("snntorch")
    model = build_model("snn-mlp", in_shape=(1, 4, 4), num_classes=3, time_steps=3,
                        hidden=(8,), neuron="if")
    x = torch.rand(2, 1, 4, 4)
    results = compare_spikes(model, to_nir(model, None, x), x)
    assert results[0].exact
    assert not results[1].ran and "IF" in results[1].error


# ---- refusals ----------------------------------------------------------------------------
def test_max_pooling_is_refused_naming_the_layer() -> None:
    model, example = build_case("snn-braincog-cifar")
    with pytest.raises(ModelStructureError, match=r"features\.pool2 \(MaxPool2d\).*AvgPool2d"):
        to_nir(model, None, example)


def test_soft_reset_is_refused_naming_the_layer() -> None:
    model = build_model("snn-mlp", in_shape=(1, 4, 4), num_classes=3, hidden=(8,),
                        neuron_kwargs={"reset": "soft"})
    with pytest.raises(ModelStructureError, match=r"features\.layer1\.spike .*soft reset"):
        to_nir(model, None, torch.rand(2, 1, 4, 4))


def test_nonzero_reset_potential_is_refused() -> None:
    model = build_model("snn-mlp", in_shape=(1, 4, 4), num_classes=3, hidden=(8,),
                        neuron_kwargs={"v_reset": -0.1})
    with pytest.raises(ModelStructureError, match="v_reset"):
        to_nir(model, None, torch.rand(2, 1, 4, 4))


def test_ann_is_refused() -> None:
    model = build_model("ann-mlp", in_shape=(1, 4, 4), num_classes=3, hidden=(8,))
    with pytest.raises(ModelStructureError, match="no spiking neurons"):
        to_nir(model, None, torch.rand(2, 1, 4, 4))


class _UnknownOp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from devprune.snn import layers as ms
        from devprune.snn.encoders import DirectEncoder

        self.encoder = DirectEncoder(2)
        self.fc = ms.Linear(4, 3)
        self.spike = STBPLIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spike(torch.sigmoid(self.fc(self.encoder(x)))).mean(0)


def test_an_operation_without_nir_equivalent_is_refused() -> None:
    with pytest.raises(ModelStructureError, match="sigmoid"):
        to_nir(_UnknownOp(), None, torch.rand(2, 4))


def test_a_recurrent_weight_is_refused_naming_it() -> None:
    pytest.importorskip("snntorch")
    from tests.core.test_recurrent import LinearRecurrence

    with pytest.raises(ModelStructureError, match=r"recurrent weight\(s\) \['rec'\]"):
        to_nir(LinearRecurrence(), None, torch.rand(2, 5))


def test_every_refusal_is_one_line() -> None:
    model, example = build_case("snn-braincog-cifar")
    with pytest.raises(ModelStructureError) as info:
        to_nir(model, None, example)
    assert "\n" not in str(info.value)


def test_event_frame_model_records_its_encoding_and_crop() -> None:
    torch.manual_seed(3)
    model = build_model("snn-small", in_shape=(5, 2, 10, 10), num_classes=3, crop=8,
                        channels=(4, 6), hidden=12)
    x = (torch.rand(2, 5, 2, 10, 10) < 0.5).float()
    graph = roundtrip(to_nir(model, None, x))
    assert str(graph.metadata["encoding"]) == "event-frames"
    assert list(graph.metadata["encoding_crop"]) == [8, 8]
    assert int(graph.metadata["time_steps"]) == 5
    assert list(graph.nodes["input"].input_type["input"]) == [2, 8, 8]
    assert compare_spikes(model, graph, x, snntorch=False)[0].exact


class _TimeMajor(nn.Module):
    """A user's own module: time-major input, no encoder, spikes out at every step."""

    def __init__(self) -> None:
        super().__init__()
        from devprune.snn import layers as ms

        self.fc1, self.lif1 = ms.Linear(6, 8), LIF(tau=2.0, threshold=0.3)
        self.fc2, self.lif2 = ms.Linear(8, 3), STBPLIF(threshold=0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif2(self.fc2(self.lif1(self.fc1(x))))


def test_a_user_model_on_time_major_input_exports_its_spike_trains() -> None:
    torch.manual_seed(4)
    model = _TimeMajor()
    x = torch.rand(7, 3, 6) * 2
    graph = roundtrip(to_nir(model, None, x))
    assert int(graph.metadata["time_steps"]) == 7
    assert "time-major" in str(graph.metadata["encoding"])
    assert "every step" in str(graph.metadata["readout"])
    results = compare_spikes(model, graph, x)
    assert all(r.exact for r in results if r.ran), [r.line() for r in results]


def test_an_unmapped_spikingjelly_neuron_is_refused_naming_the_layer() -> None:
    neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    from devprune.snn import layers as ms
    from devprune.snn.encoders import DirectEncoder

    model = nn.Sequential(DirectEncoder(2), ms.Flatten(), ms.Linear(16, 4),
                          neuron.QIFNode(step_mode="m"))  # LIF/PLIF/IF nodes are mapped
    with pytest.raises(ModelStructureError, match=r"layer 3 \(QIFNode\) has no NIR mapping"):
        to_nir(model, None, torch.rand(2, 1, 4, 4))


class _LinearReadout(nn.Module):
    """Spiking hidden layer, non-spiking readout (Linear + BatchNorm1d), mean over time."""

    def __init__(self) -> None:
        super().__init__()
        from devprune.snn import layers as ms
        from devprune.snn.encoders import DirectEncoder

        self.encoder = DirectEncoder(4)
        self.flatten = ms.Flatten()
        self.fc1, self.lif1 = ms.Linear(16, 10), STBPLIF(threshold=0.3)
        self.fc2, self.bn2 = ms.Linear(10, 3, bias=False), ms.BatchNorm1d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.fc2(self.lif1(self.fc1(self.flatten(self.encoder(x)))))).mean(0)


def test_a_non_spiking_readout_exports_and_its_values_match() -> None:
    torch.manual_seed(5)
    model = _LinearReadout().eval()
    with torch.no_grad():
        model.bn2.running_mean.uniform_(-1, 1)
        model.bn2.running_var.uniform_(0.5, 2)
    x = torch.rand(3, 1, 4, 4) * 2
    graph = roundtrip(to_nir(model, None, x))
    assert "values (a non-spiking readout)" in str(graph.metadata["readout"])
    assert isinstance(graph.nodes["fc2"], nir.Affine)  # the folded BN gave it a bias
    assert [src for src, dst in graph.edges if dst == "output"] == ["fc2"]
    ours = compare_spikes(model, graph, x, snntorch=False)[0]
    assert ours.exact and ours.layers == {"lif1": (120, 120)}, ours.line()
    assert ours.output_total == 4 * 3 * 3 and ours.output_max_diff < 1e-5
    # a wrong bias is caught
    graph.nodes["fc2"].bias = graph.nodes["fc2"].bias + 0.1
    assert not compare_spikes(model, graph, x, snntorch=False)[0].exact
