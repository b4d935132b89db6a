"""Non-weight modules whose per-channel tensors move with a layer's units, and which dead
units are *silent* (output exactly zero whatever the input).

A module is coupled to a coupling class when every weight layer feeding it (walking back
through pooling, neurons, adds, flattens) belongs to that class: a BatchNorm after its conv,
a BatchNorm after a residual add, a neuron with per-channel parameters. When fx cannot trace
the model, the structure's ``norm_name`` / ``post_name`` are used (a chain is assumed).

Removing a dead unit is exact only when the unit outputs exactly zero in the masked model.
Hard masking zeroes its weight row, bias and its own BN affine, so this holds for the usual
conv-BN-neuron stack whatever the BN running statistics are (gamma = 0 and beta = 0 give
0). It does *not* hold for a BN without affine whose running mean is non-zero, for a BN
after a residual add (its beta is not zeroed), for sigmoid-like activations (f(0) != 0) or
for a neuron that fires on zero input. Such units are kept (as zero-weight units) so the
compacted model stays equal to the masked one.
"""

from __future__ import annotations

import torch
from torch import fx, nn

# the norm list, the cross-channel modules and the activations are devprune.kinds' entries
from devprune.kinds import (
    CROSS_CHANNEL_MODULES,
    NONZERO_AT_ZERO_FUNCTIONS,
    NORM_LAYERS,
    is_activation,
    is_spiking_neuron,
)
from devprune.snn.layers import is_multi_step
from devprune.structure import ModelGraph, ModelStructure, trace


def channel_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's own parameters and buffers that have a leading axis (candidates)."""
    own = dict(module.named_parameters(recurse=False)) | dict(module.named_buffers(recurse=False))
    return {name: t for name, t in own.items() if t is not None and t.dim() >= 1}


def coupled_modules(
    model: nn.Module, structure: ModelStructure, class_of: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """``({module name: class}, {class: reason it must keep every unit})``."""
    if not structure.exact:
        return _coupled_from_chain(structure, class_of), {}
    graph = trace(model)
    walker = ModelGraph(graph, dict(model.named_modules()))
    coupled: dict[str, str] = {}
    pins: dict[str, str] = {}
    for node in graph.nodes:
        if node.op not in ("call_module", "call_function", "call_method") or walker.is_weight(node):
            continue
        found, _, _ = walker.producers(node)
        classes = {class_of[name] for name in found if name in class_of}
        if not classes:
            continue
        _classify_node(walker, node, classes, coupled, pins)
    return coupled, pins


def _classify_node(
    walker: ModelGraph, node: fx.Node, classes: set[str], coupled: dict[str, str],
    pins: dict[str, str],
) -> None:
    module = walker.module_of(node)
    label = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    if isinstance(module, CROSS_CHANNEL_MODULES):
        for cls in classes:
            pins[cls] = f"{label} normalises across channels"
    elif node.op != "call_module" and node.target in NONZERO_AT_ZERO_FUNCTIONS:
        for cls in classes:
            pins[cls] = f"{label} is non-zero at zero input"
    elif module is not None and (channel_tensors(module) or is_activation(module)):
        if len(classes) > 1:
            for cls in classes:
                pins[cls] = f"{label} mixes channels of several untied layers"
        else:
            coupled[node.target] = next(iter(classes))


def _coupled_from_chain(structure: ModelStructure, class_of: dict[str, str]) -> dict[str, str]:
    coupled = {}
    for layer in structure.layers:
        for name in (layer.norm_name, layer.post_name):
            if name is not None:
                coupled[name] = class_of[layer.name]
    return coupled


# --------------------------------------------------------------------------------------------
# silence of dead units
# --------------------------------------------------------------------------------------------
def batchnorm_silent(norm: nn.Module) -> torch.Tensor:
    """Bool per channel: a zero input gives exactly zero output, in train and eval mode."""
    channels = norm.num_features
    beta = norm.bias if norm.bias is not None else torch.zeros(channels)
    silent = beta.detach().cpu() == 0  # train mode: (0 - batch mean 0) * ... + beta
    if norm.running_mean is not None:
        gamma = norm.weight if norm.weight is not None else torch.ones(channels)
        shift = norm.running_mean.detach().cpu() * gamma.detach().cpu()
        silent &= shift == 0  # eval mode: (0 - running_mean) * gamma / std + beta
    return silent


def probe_silent(module: nn.Module, channels: int, spatial: bool) -> torch.Tensor | None:
    """Bool per channel: does ``module`` map a zero input to zero? None if it cannot be run."""
    shape: list[int] = [1, channels] + ([1, 1] if spatial else [])
    if is_multi_step(module) or is_spiking_neuron(module):
        shape = [2, *shape]
    zeros = torch.zeros(shape)
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            out = module(zeros)
    except Exception:  # an unusual module: the verification pass still guards equality
        return None
    if not torch.is_tensor(out) or out.shape != zeros.shape:
        return None
    channel_dim = len(shape) - (3 if spatial else 1)
    return (out == 0).transpose(0, channel_dim).reshape(channels, -1).all(dim=1)


def non_silent_units(
    modules: dict[str, nn.Module], coupled: dict[str, str], class_units: dict[str, int],
    class_spatial: dict[str, bool],
) -> dict[str, torch.Tensor]:
    """Per class: units that would stay non-zero even when dead (so must not be removed)."""
    loud: dict[str, torch.Tensor] = {}
    for name, cls in coupled.items():
        module, units = modules[name], class_units[cls]
        if isinstance(module, NORM_LAYERS) and module.num_features == units:
            silent = batchnorm_silent(module)
        elif is_activation(module):
            silent = probe_silent(module, units, class_spatial[cls])
        else:
            silent = None
        if silent is not None:
            loud[cls] = loud.get(cls, torch.zeros(units, dtype=torch.bool)) | ~silent
    return loud
