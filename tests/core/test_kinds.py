"""devprune.kinds is the one table of layer kinds that discovery, masks, measurement,
compaction and export read."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

import devprune
from devprune import kinds, structure
from devprune.compact import coupling, live, record, sparse, surgery
from devprune.export import nir_graph
from devprune.measure import neurons, static, synops, workload
from devprune.snn import layers as ms


def test_discovery_and_measurement_read_the_one_table() -> None:
    assert structure.WEIGHT_LAYERS is kinds.WEIGHT_LAYERS
    assert structure.NORM_LAYERS is kinds.NORM_LAYERS
    assert structure.is_activation_module is kinds.is_activation
    assert structure.RECURRENT_NEURONS is kinds.RECURRENT_NEURONS
    assert structure.ACTIVATION_FUNCTIONS is kinds.ACTIVATION_FUNCTIONS
    assert structure.ACTIVATION_METHODS is kinds.ACTIVATION_METHODS
    assert static.NEURON_STATE_BUFFERS is kinds.NEURON_STATE_BUFFERS
    assert neurons.neuron_library is kinds.neuron_library
    assert neurons.SPIKINGJELLY_NODES is kinds.SPIKINGJELLY_NODES
    assert nir_graph.SPIKINGJELLY_NODES == kinds.SPIKINGJELLY_NODES  # export's copy agrees
    assert structure.is_unsupported_recurrent is kinds.is_unsupported_recurrent
    assert synops.SUPPORTED_LAYERS is kinds.CONNECTION_LAYERS
    assert synops.layer_kind is kinds.layer_kind
    assert workload.WINDOWED_AVG_POOLS is kinds.WINDOWED_AVG_POOLS
    assert workload.avg_pool_dims is kinds.avg_pool_dims
    assert workload.is_activation is kinds.is_activation
    assert set(kinds.WEIGHT_LAYERS) <= set(kinds.CONNECTION_LAYERS)
    assert kinds.AVG_POOLS == {**kinds.WINDOWED_AVG_POOLS, **kinds.ADAPTIVE_AVG_POOLS}


def test_compaction_record_and_export_read_the_one_table() -> None:
    assert record.SIZE_ATTRIBUTES is kinds.SIZE_ATTRIBUTES
    assert coupling.NORM_LAYERS is kinds.NORM_LAYERS
    assert coupling.CROSS_CHANNEL_MODULES is kinds.CROSS_CHANNEL_MODULES
    assert coupling.NONZERO_AT_ZERO_FUNCTIONS is kinds.NONZERO_AT_ZERO_FUNCTIONS
    assert coupling.is_activation is kinds.is_activation
    assert surgery.CHANNEL_SIZE_ATTRIBUTES is kinds.CHANNEL_SIZE_ATTRIBUTES
    assert surgery.unit_size_attributes is kinds.unit_size_attributes
    assert surgery.unit_tensors is kinds.unit_tensors  # the hard-mask rule, written once
    assert live.CHANNEL_SIZE_ATTRIBUTES is kinds.CHANNEL_SIZE_ATTRIBUTES
    assert live.unit_size_attributes is kinds.unit_size_attributes
    assert sparse.LINEAR_LAYERS is kinds.LINEAR_LAYERS
    assert nir_graph.NORM_LAYERS is kinds.NORM_LAYERS
    assert nir_graph.MAX_POOLS is kinds.MAX_POOLS
    assert nir_graph.EVAL_IDENTITY_MODULES is kinds.EVAL_IDENTITY_MODULES


def test_neuron_library_by_module_name() -> None:
    snntorch_like = type("Leaky", (nn.Module,), {"__module__": "snntorch._neurons.leaky"})
    jelly_like = type("LIFNode", (nn.Module,), {"__module__": "spikingjelly.activation_based"})
    assert kinds.neuron_library(snntorch_like()) == "snntorch"
    assert kinds.neuron_library(jelly_like()) == "spikingjelly"
    assert kinds.neuron_library(nn.ReLU()) is None


def test_unsupported_recurrent_layers() -> None:
    assert kinds.is_unsupported_recurrent(nn.LSTM(2, 2))
    assert kinds.is_unsupported_recurrent(nn.GRUCell(2, 2))
    assert not kinds.is_unsupported_recurrent(nn.Linear(2, 2))


def test_size_attributes_are_the_unit_and_channel_tables() -> None:
    assert kinds.SIZE_ATTRIBUTES == (
        "in_features", "out_features", "in_channels", "out_channels", "num_features",
        "num_parameters", "num_channels",
    )  # the order the compacted-model record was written with
    assert kinds.unit_size_attributes(ms.Linear(3, 4)) == ("out_features", "in_features")
    assert kinds.unit_size_attributes(nn.Conv3d(3, 4, 1)) == ("out_channels", "in_channels")


class _CustomNorm(nn.modules.batchnorm._BatchNorm):
    """A user's norm family: a _BatchNorm subclass that is none of torch's BatchNormNd."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        pass


def test_a_custom_norm_is_a_norm_for_discovery_and_compaction_alike() -> None:
    norm = _CustomNorm(3)
    assert isinstance(norm, kinds.NORM_LAYERS)
    with torch.no_grad():
        norm.running_mean.copy_(torch.tensor([0.0, 0.5, 0.0]))
        norm.bias.copy_(torch.tensor([0.0, 0.0, 0.25]))
    # compaction's silence check reads it as a norm: channel 1 (eval shift) and channel 2
    # (beta) stay non-zero when dead; a module it did not know would be probed or skipped
    loud = coupling.non_silent_units({"n": norm}, {"n": "c"}, {"c": 3}, {"c": False})
    assert loud["c"].tolist() == [False, True, True]
    model = nn.Sequential(nn.Linear(2, 3), _CustomNorm(3), nn.ReLU(), nn.Linear(3, 1))
    assert discover_norm(model) == "1"


def discover_norm(model: nn.Module) -> str | None:
    return structure.discover(model)["0"].norm_name


# Files allowed to name torch layer classes in a kind decision, and why.
_SPECIFIC_CLASSES = {
    "kinds.py": "the table itself",
    "export/nir_graph.py": "the NIR mapping: which class becomes which NIR node",
    "export/nir_run.py": "builds nn.Linear / nn.Conv2d from NIR nodes",
}
_LAYER_CLASS = (r"nn\.(Linear|Conv[123]d|\w*BatchNorm\w*|\w*Pool[123]d|LayerNorm|GroupNorm|"
                 r"RNN\w*|LSTM\w*|GRU\w*)\b")


def test_no_module_keeps_its_own_class_lists() -> None:
    """A module that re-lists the norm layers (or sizes, or tests layer classes by hand)
    would silently miss a family added to devprune.kinds."""
    root = Path(devprune.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in _SPECIFIC_CLASSES:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if "``" in code:
                continue  # prose in a docstring
            if ("_BatchNorm" in code
                    or re.match(r"\s*(NORM_LAYERS|SIZE_ATTRIBUTES|CHANNEL_SIZE_ATTRIBUTES|"
                                r"CROSS_CHANNEL\w*|\w*AVG_POOLS|MAX_POOLS|\w*RECURRENT\w*|"
                                r"ACTIVATION_\w+|NONZERO_AT_ZERO\w*|NEURON_STATE_BUFFERS|"
                                r"SPIKINGJELLY_NODES)\s*[:=]",
                                code)
                    or re.search(r"isinstance\([^)]*" + _LAYER_CLASS, code)):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert offenders == []


def test_avg_pool_dims() -> None:
    assert kinds.avg_pool_dims(ms.AvgPool2d(2)) == 2  # devprune's multi-step subclass too
    assert kinds.avg_pool_dims(nn.AdaptiveAvgPool1d(1)) == 1
    assert kinds.avg_pool_dims(nn.MaxPool2d(2)) is None


def test_layer_kind_and_unit_counts() -> None:
    assert kinds.layer_kind(nn.Linear(3, 4)) == "linear"
    assert kinds.layer_kind(nn.Conv2d(3, 4, 3)) == "conv"
    assert kinds.unit_counts(nn.Linear(3, 4)) == (4, 3)
    assert kinds.unit_counts(nn.Conv1d(5, 6, 3)) == (6, 5)


def test_hard_mask_rule_names_the_bias_and_the_coupled_norm_affine() -> None:
    conv, norm = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
    assert [id(p) for p in kinds.unit_tensors(conv, norm)] == [
        id(conv.bias), id(norm.weight), id(norm.bias)]
    assert kinds.unit_tensors(nn.Linear(3, 4, bias=False), None) == []
    plain = nn.BatchNorm2d(4, affine=False)
    assert [id(p) for p in kinds.unit_tensors(conv, plain)] == [id(conv.bias)]
    assert all(isinstance(p, torch.nn.Parameter) for p in kinds.unit_tensors(conv, norm))
