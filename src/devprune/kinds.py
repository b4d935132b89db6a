"""The table of layer and neuron kinds devprune understands, in one place.

Structure discovery (:mod:`devprune.structure`), masks (:mod:`devprune.masks`),
measurement (:mod:`devprune.measure`), compaction (:mod:`devprune.compact`: the norm list,
cross-channel modules, size attributes, layer families, the hard-mask rule and the
architecture record) and NIR export (:mod:`devprune.export`) read these entries instead of
keeping their own class lists, so supporting a new layer family means adding it here (and,
where its weight layout differs from ``[out, in, *kernel]``, teaching the compaction slicing
and :mod:`devprune.measure.synops`' operation count about it). Neurons are recognised by
:func:`devprune.snn.base.is_spiking_neuron` (devprune's ``BaseNeuron`` and snnTorch /
SpikingJelly neurons by class name).
"""

from __future__ import annotations

import torch
from torch import nn

from devprune.snn.base import is_spiking_neuron

__all__ = [
    "ACTIVATION_FUNCTIONS",
    "ACTIVATION_METHODS",
    "ACTIVATION_MODULES",
    "ADAPTIVE_AVG_POOLS",
    "AVG_POOLS",
    "CHANNEL_SIZE_ATTRIBUTES",
    "CONNECTION_LAYERS",
    "CROSS_CHANNEL_MODULES",
    "EVAL_IDENTITY_MODULES",
    "LINEAR_LAYERS",
    "MAX_POOLS",
    "NEURON_STATE_BUFFERS",
    "NONZERO_AT_ZERO_FUNCTIONS",
    "NORM_LAYERS",
    "RECURRENT_CHILD",
    "RECURRENT_NEURONS",
    "SIZE_ATTRIBUTES",
    "SPIKINGJELLY_NODES",
    "UNIT_SIZE_ATTRIBUTES",
    "UNSUPPORTED_RECURRENT",
    "UNSUPPORTED_RECURRENT_NAMES",
    "WEIGHT_LAYERS",
    "WINDOWED_AVG_POOLS",
    "avg_pool_dims",
    "is_activation",
    "is_spiking_neuron",
    "is_unsupported_recurrent",
    "layer_kind",
    "neuron_library",
    "unit_counts",
    "unit_size_attributes",
    "unit_tensors",
]

# Prunable weight layers: one unit per output row (Linear) or output channel (ConvNd); the
# weight is ``[units, fan_in, *kernel]``.
WEIGHT_LAYERS: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Linear)
# The ``linear`` family of :func:`layer_kind` (every other weight layer is ``conv``): one unit
# per output feature, no kernel axes; the CSR inference layer (compact.sparse) replaces these.
LINEAR_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear,)
# Layers whose weights measurement counts as synapses and synaptic operations (NeuroBench's
# ConnectionSparsity / SynapticOperations read the same): the prunable ones and Conv3d.
CONNECTION_LAYERS: tuple[type[nn.Module], ...] = (*WEIGHT_LAYERS, nn.Conv3d)
# Recurrent weights devprune places: the all-to-all weight layer named RECURRENT_CHILD inside
# these snnTorch neurons (discovery ties it to the layers feeding the neuron, docs/RECURRENT.md).
RECURRENT_NEURONS: tuple[str, ...] = ("RLeaky", "RSynaptic")
RECURRENT_CHILD = "recurrent"
# Recurrent layers devprune does not model (LSTM/GRU/RNN gates; SpikingJelly's Linear on
# [input, previous output], whose columns mix two unit populations): discovery refuses them.
UNSUPPORTED_RECURRENT: tuple[type[nn.Module], ...] = (nn.RNNBase, nn.RNNCellBase)
UNSUPPORTED_RECURRENT_NAMES: tuple[str, ...] = ("LinearRecurrentContainer",)
# Per-channel normalisation coupled to the weight layer before it: its affine belongs to that
# layer's units (discovery records it as ``PrunableLayer.norm_name``).
NORM_LAYERS: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._BatchNorm,)
# Normalisations over the channel axis (and softmaxes): a removed channel changes every other
# channel's output, so compaction keeps every unit of the layers feeding one.
CROSS_CHANNEL_MODULES: tuple[type[nn.Module], ...] = (
    nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.Softmax, nn.LogSoftmax,
)
# Element-wise ANN activations: the output after one is a layer's postsynaptic activity, as a
# neuron's spikes are for an SNN layer.
ACTIVATION_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Hardtanh, nn.Tanh, nn.Sigmoid,
)
# The same activations called as functions or tensor methods in a traced graph (fx
# ``call_function`` / ``call_method`` targets), and those of them (or their in-place method
# forms) that are non-zero at zero input: compaction keeps the units feeding one.
ACTIVATION_FUNCTIONS = {torch.relu, torch.nn.functional.relu, torch.tanh, torch.sigmoid,
                        torch.nn.functional.gelu, torch.nn.functional.silu}
ACTIVATION_METHODS = {"relu", "relu_", "tanh", "sigmoid"}
NONZERO_AT_ZERO_FUNCTIONS = {torch.sigmoid, torch.nn.functional.sigmoid, "sigmoid", "sigmoid_"}
# SpikingJelly nodes whose update is snnTorch Leaky's (up to an input scale): measurement
# replays their membrane (measure.neurons) and NIR export maps them to LIF / IF nodes.
SPIKINGJELLY_NODES: tuple[str, ...] = ("LIFNode", "ParametricLIFNode", "IFNode")
# Buffers in which snnTorch neurons keep the membrane / synaptic state of the last batch:
# run-time state, not part of the deployed model (measurement does not count them).
NEURON_STATE_BUFFERS = frozenset({"mem", "syn", "spk", "syn_exc", "syn_inh"})
# Average pools and their number of spatial dimensions: spike counts pass through them
# (measurement recovers event counts behind a pool). Windowed pools (``kernel_size``,
# ``stride``, ``padding``) and adaptive ones (``output_size``) find their divisor differently.
WINDOWED_AVG_POOLS: dict[type[nn.Module], int] = {
    nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3,
}
ADAPTIVE_AVG_POOLS: dict[type[nn.Module], int] = {
    nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool3d: 3,
}
AVG_POOLS: dict[type[nn.Module], int] = {**WINDOWED_AVG_POOLS, **ADAPTIVE_AVG_POOLS}
# Max pools: channels pass through them; NIR has no node for them, so export refuses them.
MAX_POOLS: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)
# Modules that are the identity in eval mode (export drops them).
EVAL_IDENTITY_MODULES: tuple[type[nn.Module], ...] = (nn.Dropout, nn.Identity)
# The size attributes of a weight layer's unit (output) and input axes, per family of
# :func:`layer_kind`: unit_counts reads them, compaction sets them on a resized layer.
UNIT_SIZE_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "linear": ("out_features", "in_features"),
    "conv": ("out_channels", "in_channels"),
}
# The size attributes of per-channel modules coupled to a layer's units (norm, PReLU, GroupNorm
# sizes): compaction sets the one equal to the sliced length.
CHANNEL_SIZE_ATTRIBUTES: tuple[str, ...] = ("num_features", "num_parameters", "num_channels")
# Every integer size attribute layers carry: the architecture record of a compacted model
# stores them, and rebuild() sets them on the resized modules, so a layer family with another
# size attribute adds it to one of the two tables above.
SIZE_ATTRIBUTES: tuple[str, ...] = (
    *(name for out_in in UNIT_SIZE_ATTRIBUTES.values() for name in reversed(out_in)),
    *CHANNEL_SIZE_ATTRIBUTES,
)


def avg_pool_dims(module: nn.Module) -> int | None:
    """The number of spatial dimensions of an average pool (``AVG_POOLS``); None otherwise."""
    return next((dims for cls, dims in AVG_POOLS.items() if isinstance(module, cls)), None)


def is_activation(module: nn.Module) -> bool:
    """A spiking neuron or an ANN activation module (``ACTIVATION_MODULES``): its output is a
    layer's postsynaptic activity, and a dead unit stays silent through it when f(0) = 0."""
    return is_spiking_neuron(module) or isinstance(module, ACTIVATION_MODULES)


def neuron_library(module: nn.Module) -> str | None:
    """``snntorch`` or ``spikingjelly`` when a class in the module's MRO comes from that
    package (by module name, so neither has to be importable); None otherwise."""
    modules = [cls.__module__ for cls in type(module).__mro__]
    for library in ("snntorch", "spikingjelly"):
        if any(name.startswith(library) for name in modules):
            return library
    return None


def is_unsupported_recurrent(module: nn.Module) -> bool:
    """A recurrent layer devprune refuses (``UNSUPPORTED_RECURRENT`` / ``_NAMES``)."""
    return (isinstance(module, UNSUPPORTED_RECURRENT)
            or type(module).__name__ in UNSUPPORTED_RECURRENT_NAMES)


def layer_kind(module: nn.Module) -> str:
    """``linear`` (``LINEAR_LAYERS``) or ``conv`` (every other weight layer): the granularity
    family a pruning method picks for the layer, and the key of ``UNIT_SIZE_ATTRIBUTES``."""
    return "linear" if isinstance(module, LINEAR_LAYERS) else "conv"


def unit_size_attributes(module: nn.Module) -> tuple[str, str]:
    """``(units, inputs)`` attribute names of a weight layer (``out_features`` /
    ``in_features`` of a Linear, ``out_channels`` / ``in_channels`` of a ConvNd)."""
    return UNIT_SIZE_ATTRIBUTES[layer_kind(module)]


def unit_counts(module: nn.Module) -> tuple[int, int]:
    """``(units, inputs)`` of a weight layer: output and input features or channels."""
    units, inputs = unit_size_attributes(module)
    return getattr(module, units), getattr(module, inputs)


def unit_tensors(layer: nn.Module, norm: nn.Module | None) -> list[nn.Parameter]:
    """The hard-mask rule: the per-unit tensors a dead unit loses besides its weight row, its
    bias and the affine of its coupled normalisation (``norm``, None: none). A dead unit of a
    residual branch only silences that branch, so zeroing its norm is safe there too."""
    params = [layer.bias] if getattr(layer, "bias", None) is not None else []
    if norm is not None:
        params += [p for p in (norm.weight, norm.bias) if p is not None]
    return params
