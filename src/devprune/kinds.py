"""The table of layer and neuron kinds devprune understands, in one place.

Structure discovery (:mod:`devprune.structure`), masks (:mod:`devprune.masks`),
measurement (:mod:`devprune.measure`), the architecture record of compacted models
(:mod:`devprune.compact.record`) and NIR export (:mod:`devprune.export`) read these entries
instead of keeping their own class lists, so supporting a new layer family means adding it
here (and, where its weight layout differs from ``[out, in, *kernel]``, teaching
:func:`unit_counts` and the compaction slicing about it). Neurons are recognised by
:func:`devprune.snn.base.is_spiking_neuron` (devprune's ``BaseNeuron`` and snnTorch /
SpikingJelly neurons by class name).
"""

from __future__ import annotations

from torch import nn

from devprune.snn.base import is_spiking_neuron

__all__ = [
    "ACTIVATION_MODULES",
    "AVG_POOLS",
    "CONNECTION_LAYERS",
    "EVAL_IDENTITY_MODULES",
    "MAX_POOLS",
    "NORM_LAYERS",
    "SIZE_ATTRIBUTES",
    "WEIGHT_LAYERS",
    "avg_pool_dims",
    "is_spiking_neuron",
    "layer_kind",
    "unit_counts",
    "unit_tensors",
]

# Prunable weight layers: one unit per output row (Linear) or output channel (ConvNd); the
# weight is ``[units, fan_in, *kernel]``.
WEIGHT_LAYERS: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Linear)
# Layers whose weights measurement counts as synapses and synaptic operations (NeuroBench's
# ConnectionSparsity / SynapticOperations read the same): the prunable ones and Conv3d.
CONNECTION_LAYERS: tuple[type[nn.Module], ...] = (*WEIGHT_LAYERS, nn.Conv3d)
# Per-channel normalisation coupled to the weight layer before it: its affine belongs to that
# layer's units (discovery records it as ``PrunableLayer.norm_name``).
NORM_LAYERS: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._BatchNorm,)
# Element-wise ANN activations: the output after one is a layer's postsynaptic activity, as a
# neuron's spikes are for an SNN layer.
ACTIVATION_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Hardtanh, nn.Tanh, nn.Sigmoid,
)
# Average pools and their number of spatial dimensions: spike counts pass through them
# (measurement recovers event counts behind a pool).
AVG_POOLS: dict[type[nn.Module], int] = {
    nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3,
    nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool3d: 3,
}
# Max pools: channels pass through them; NIR has no node for them, so export refuses them.
MAX_POOLS: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)
# Modules that are the identity in eval mode (export drops them).
EVAL_IDENTITY_MODULES: tuple[type[nn.Module], ...] = (nn.Dropout, nn.Identity)
# The integer size attributes layers carry (features, channels, norm and PReLU sizes): the
# architecture record of a compacted model stores them, and rebuild() sets them on the
# resized modules, so a layer family with another size attribute adds it here.
SIZE_ATTRIBUTES: tuple[str, ...] = (
    "in_features", "out_features", "in_channels", "out_channels", "num_features",
    "num_parameters", "num_channels",
)


def avg_pool_dims(module: nn.Module) -> int | None:
    """The number of spatial dimensions of an average pool (``AVG_POOLS``); None otherwise."""
    return next((dims for cls, dims in AVG_POOLS.items() if isinstance(module, cls)), None)


def layer_kind(module: nn.Module) -> str:
    """``linear`` or ``conv``: the granularity family a pruning method picks for the layer."""
    return "linear" if isinstance(module, nn.Linear) else "conv"


def unit_counts(module: nn.Module) -> tuple[int, int]:
    """``(units, inputs)`` of a weight layer: output and input features or channels."""
    if isinstance(module, nn.Linear):
        return module.out_features, module.in_features
    return module.out_channels, module.in_channels


def unit_tensors(layer: nn.Module, norm: nn.Module | None) -> list[nn.Parameter]:
    """The hard-mask rule: the per-unit tensors a dead unit loses besides its weight row, its
    bias and the affine of its coupled normalisation (``norm``, None: none). A dead unit of a
    residual branch only silences that branch, so zeroing its norm is safe there too."""
    params = [layer.bias] if getattr(layer, "bias", None) is not None else []
    if norm is not None:
        params += [p for p in (norm.weight, norm.bias) if p is not None]
    return params
