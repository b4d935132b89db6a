"""Static metrics: what the weights (and masks) say, without running the model.

Counts are taken on the *kept* entries of each weight: an entry is kept when it is non-zero and,
if a :class:`~devprune.masks.MaskSet` covers the layer, its mask keeps it. A unit (filter /
neuron) is *alive* when it has at least one kept incoming synapse from a live input **and** at
least one kept outgoing synapse onto a live unit of a consumer layer (output layers always
count as having outputs). This is a fixed point over the dependency graph of
:func:`devprune.structure.discover`, so a filter whose every input filter was pruned, or whose
every outgoing column was pruned, is reported dead even though its own weight row is not zero.
Definitions and the differences to NeuroBench are in docs/MEASUREMENT.md.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from devprune.kinds import CONNECTION_LAYERS, NEURON_STATE_BUFFERS, is_spiking_neuron
from devprune.masks import MaskSet
from devprune.structure import ModelStructure, PrunableLayer, discover

# CONNECTION_LAYERS (devprune.kinds) are the layers NeuroBench's ConnectionSparsity reads (a
# recurrent weight that is an nn.Linear / nn.Conv2d, as in snnTorch RLeaky, is one of them;
# nn.LSTM-style layers are refused).
# torch.nn.utils.prune keeps the dense weight as ``weight_orig`` and a ``weight_mask`` buffer;
# a deployed model stores the weight once and no mask.
WEIGHT_PARAM_NAMES = ("weight", "weight_orig")
MASK_BUFFER_SUFFIX = "_mask"
# snnTorch neurons' state buffers (run-time state) are kinds.NEURON_STATE_BUFFERS.

UnitVectors = dict[str, torch.Tensor]


# --------------------------------------------------------------------------------------------
# kept entries and channel bookkeeping
# --------------------------------------------------------------------------------------------
def kept_entries(structure: ModelStructure, masks: MaskSet | None = None
                 ) -> dict[str, torch.Tensor]:
    """Bool tensor per weight layer (weight shape): non-zero and not removed by ``masks``."""
    kept: dict[str, torch.Tensor] = {}
    for layer in structure.layers:
        weight = layer.module.weight.detach()
        entries = weight != 0
        if masks is not None and layer.name in masks:
            entries = entries & masks[layer.name].to(weight.device)
        kept[layer.name] = entries
    return kept


def _rows_any(entries: torch.Tensor) -> torch.Tensor:
    return entries.flatten(1).any(dim=1)


def _groups(module: nn.Module) -> int:
    return int(getattr(module, "groups", 1))


def _column_channels(module: nn.Module, channels: torch.Tensor) -> torch.Tensor:
    """Bool ``[out, in/groups]``: whether weight column ``c`` of row ``o`` reads a channel set
    in ``channels`` (``[in_channels]``); grouped convolutions read their own group only."""
    out = module.weight.shape[0]
    groups = _groups(module)
    return channels.view(groups, -1).repeat_interleave(out // groups, dim=0)


def _restrict(entries: torch.Tensor, rows: torch.Tensor | None = None,
              channels: torch.Tensor | None = None, module: nn.Module | None = None
              ) -> torch.Tensor:
    """``entries`` with rows outside ``rows`` and columns outside ``channels`` cleared."""
    extra_dims = [1] * (entries.dim() - 2)
    if rows is not None:
        entries = entries & rows.to(entries.device).view(-1, 1, *extra_dims)
    if channels is not None and module is not None:
        cols = _column_channels(module, channels.to(entries.device))
        entries = entries & cols.view(*cols.shape, *extra_dims)
    return entries


def _used_channels(module: nn.Module, entries: torch.Tensor) -> torch.Tensor:
    """Bool ``[in_channels]``: input channels read by at least one entry of ``entries``."""
    per_column = entries.flatten(2).any(dim=2) if entries.dim() > 2 else entries
    groups = _groups(module)
    return per_column.view(groups, per_column.shape[0] // groups, -1).any(dim=1).flatten()


def _input_channels(layer: PrunableLayer, units: UnitVectors) -> torch.Tensor | None:
    """Input channels fed by a set unit of some producer; None when all count (data input,
    or a concatenation whose column-to-unit map is unknown)."""
    if layer.input_is_model_input or layer.input_concat or not layer.producers:
        return None
    device = layer.module.weight.device
    live = torch.zeros(layer.fan_in, dtype=torch.bool, device=device)
    for producer in layer.producers:
        live |= units[producer.name].to(device).repeat_interleave(producer.block)
    return live


# --------------------------------------------------------------------------------------------
# alive units: fixed point over inputs and outputs
# --------------------------------------------------------------------------------------------
def _has_input(structure: ModelStructure, kept: dict[str, torch.Tensor],
               alive: UnitVectors) -> UnitVectors:
    return {
        la.name: _rows_any(_restrict(kept[la.name], None, _input_channels(la, alive), la.module))
        for la in structure.layers
    }


def _has_output(structure: ModelStructure, kept: dict[str, torch.Tensor],
                alive: UnitVectors) -> UnitVectors:
    result: UnitVectors = {}
    for layer in structure.layers:
        consumers = structure.consumers(layer.name)
        device = layer.module.weight.device
        if layer.is_output or not consumers:  # no consumer known: the output is used elsewhere
            result[layer.name] = torch.ones(layer.num_units, dtype=torch.bool, device=device)
            continue
        used = torch.zeros(layer.num_units, dtype=torch.bool, device=device)
        for consumer, producer in consumers:
            if consumer.input_concat:  # column map unknown: count every unit as used
                used[:] = True
                break
            entries = _restrict(kept[consumer.name], alive[consumer.name])
            channels = _used_channels(consumer.module, entries)
            used |= channels.view(layer.num_units, producer.block).any(dim=1).to(device)
        result[layer.name] = used
    return result


def unread_units(structure: ModelStructure, kept: dict[str, torch.Tensor],
                 rows: UnitVectors) -> UnitVectors:
    """Per layer, the units no kept entry of a consumer row in ``rows`` reads (output layers,
    and layers with no known consumer, are always read): removing them changes no output."""
    return {name: ~used for name, used in _has_output(structure, kept, rows).items()}


def alive_units(structure: ModelStructure, kept: dict[str, torch.Tensor]
                ) -> tuple[UnitVectors, UnitVectors, UnitVectors]:
    """``(alive, has_input, has_output)`` per layer at the fixed point (alive only shrinks)."""
    alive = {name: _rows_any(entries) for name, entries in kept.items()}
    while True:
        has_input = _has_input(structure, kept, alive)
        has_output = _has_output(structure, kept, alive)
        updated = {name: has_input[name] & has_output[name] for name in alive}
        if all(torch.equal(updated[n], alive[n]) for n in alive):
            return alive, has_input, has_output
        alive = updated


def constant_drive(structure: ModelStructure, layer: PrunableLayer) -> torch.Tensor:
    """Bool per unit: its pre-activation is non-zero even with no input (a bias, or a coupled
    batch-norm shift), so deleting it could change the output."""
    module = layer.module
    device = module.weight.device
    drive = torch.zeros(layer.num_units, dtype=torch.bool, device=device)
    if getattr(module, "bias", None) is not None:
        drive |= module.bias.detach() != 0
    if layer.norm_name is not None:
        norm = structure.modules[layer.norm_name]
        if getattr(norm, "weight", None) is None:
            drive |= True  # no affine to zero: a zero input still leaves -mean/std
        else:
            drive |= (norm.weight.detach() != 0) | (norm.bias.detach() != 0)
    return drive


def removable_units(structure: ModelStructure, alive: UnitVectors,
                    has_output: UnitVectors) -> UnitVectors:
    """Units a compaction can delete without changing any output: dead, not in an output
    layer, and either unread (no outputs) or silent (no bias / norm shift); for channels
    tied by a residual add, removable in every member and not tied to the model input."""
    removable: UnitVectors = {}
    for layer in structure.layers:
        dead = ~alive[layer.name]
        silent = ~has_output[layer.name] | ~constant_drive(structure, layer)
        removable[layer.name] = torch.zeros_like(dead) if layer.is_output else dead & silent
    for gid, members in structure.residual_groups.items():
        if gid in structure.fixed_groups:
            together = torch.zeros_like(removable[members[0]])
        else:
            together = torch.stack([removable[m] for m in members]).all(dim=0)
        for member in members:
            removable[member] = together.clone()
    return removable


# --------------------------------------------------------------------------------------------
# footprint of the deployable model
# --------------------------------------------------------------------------------------------
def _deployable_counts(structure: ModelStructure, removable: UnitVectors
                       ) -> dict[int, int]:
    """Entries kept after removing ``removable`` units, keyed by ``id(tensor)``, for the
    weights, biases and coupled batch-norm tensors of the weight layers."""
    keep_units = {name: ~r for name, r in removable.items()}
    counts: dict[int, int] = {}
    for layer in structure.layers:
        module = layer.module
        rows = keep_units[layer.name]
        channels = _input_channels(layer, keep_units)
        if channels is None:
            channels = torch.ones(layer.fan_in, dtype=torch.bool, device=rows.device)
        cols = _column_channels(module, channels.to(rows.device))
        kernel = module.weight[0, 0].numel()
        weight_entries = int((rows.view(-1, 1) & cols).sum()) * kernel
        for name in WEIGHT_PARAM_NAMES:
            tensor = getattr(module, name, None)
            if isinstance(tensor, torch.Tensor):
                counts[id(tensor)] = weight_entries
        if getattr(module, "bias", None) is not None:
            counts[id(module.bias)] = int(rows.sum())
        if layer.norm_name is not None:
            norm = structure.modules[layer.norm_name]
            for tensor in [*norm.parameters(recurse=False), *norm.buffers(recurse=False)]:
                if tensor.dim() == 1 and tensor.numel() == layer.num_units:
                    counts[id(tensor)] = int(rows.sum())
    return counts


def footprint_bytes(model: nn.Module) -> int:
    """NeuroBench ``Footprint``: bytes of every parameter and buffer of the module."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _transient_buffers(model: nn.Module) -> set[int]:
    """Mask buffers and spiking-neuron state buffers (by ``id``)."""
    skip: set[int] = set()
    for module in model.modules():
        spiking = is_spiking_neuron(module)
        for name, buffer in module.named_buffers(recurse=False):
            if name.endswith(MASK_BUFFER_SUFFIX) or (spiking and name in NEURON_STATE_BUFFERS):
                skip.add(id(buffer))
    return skip


def deployable_footprint_bytes(model: nn.Module, structure: ModelStructure,
                               removable: UnitVectors) -> int:
    """Bytes of the model after deleting removable units, without mask buffers and neuron
    state buffers."""
    counts = _deployable_counts(structure, removable)
    skip = _transient_buffers(model)
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) not in skip:
            total += counts.get(id(tensor), tensor.numel()) * tensor.element_size()
    return total


# --------------------------------------------------------------------------------------------
# parameter counts
# --------------------------------------------------------------------------------------------
def _nonzero_parameters(model: nn.Module, structure: ModelStructure,
                        kept: dict[str, torch.Tensor]) -> int:
    """Non-zero parameters; a weight layer's weight counts its kept entries (masks honoured,
    and for torch.nn.utils.prune models the effective ``weight``, not ``weight_orig``)."""
    kept_by_module = {id(la.module): int(kept[la.name].sum()) for la in structure.layers}
    total = 0
    seen: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            if name in WEIGHT_PARAM_NAMES and id(module) in kept_by_module:
                total += kept_by_module[id(module)]
            elif name in WEIGHT_PARAM_NAMES and isinstance(module, CONNECTION_LAYERS):
                total += int(torch.count_nonzero(module.weight))
            else:
                total += int(torch.count_nonzero(param))
    return total


def connection_sparsity(model: nn.Module, kept: dict[int, int] | None = None) -> float:
    """NeuroBench ``ConnectionSparsity``: zero weights / all weights of every Linear and
    Conv1d/2d/3d leaf (``kept`` overrides non-zero counts per ``id(module)``), unrounded."""
    kept = kept or {}
    zeros = total = 0
    for module in model.modules():
        if isinstance(module, CONNECTION_LAYERS):
            numel = module.weight.numel()
            nonzero = kept.get(id(module), int(torch.count_nonzero(module.weight)))
            zeros += numel - nonzero
            total += numel
    return zeros / total if total else 0.0


# --------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------
def _layer_record(layer: PrunableLayer, kept: torch.Tensor, effective: torch.Tensor,
                  alive: torch.Tensor, has_input: torch.Tensor, prunable: bool,
                  mask_conflicts: int | None) -> dict[str, Any]:
    weight_total = kept.numel()
    weight_kept = int(kept.sum())
    bias = getattr(layer.module, "bias", None)
    bias_total = 0 if bias is None else bias.numel()
    bias_nonzero = 0 if bias is None else int(torch.count_nonzero(bias))
    record: dict[str, Any] = {
        "kind": layer.kind,
        "prunable": prunable,
        "is_output": layer.is_output,
        "units_total": layer.num_units,
        "units_alive": int(alive.sum()),
        "units_dead_no_input": int((~has_input).sum()),
        "units_dead_no_output": int((has_input & ~alive).sum()),
        "weights_total": weight_total,
        "weights_nonzero": weight_kept,
        "weights_effective": int(effective.sum()),
        "connectivity": weight_kept / max(weight_total, 1),
        "connectivity_effective": int(effective.sum()) / max(weight_total, 1),
        "params_total": weight_total + bias_total,
        "params_nonzero": weight_kept + bias_nonzero,
    }
    if mask_conflicts is not None:
        record["masked_but_nonzero"] = mask_conflicts
    return record


def _mask_conflicts(layer: PrunableLayer, masks: MaskSet | None) -> int | None:
    """Entries the mask removes but the weight still holds (reference mode between steps)."""
    if masks is None or layer.name not in masks:
        return None
    weight = layer.module.weight.detach()
    return int(((weight != 0) & ~masks[layer.name].to(weight.device)).sum())


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def static_metrics(model: nn.Module, masks: MaskSet | None = None, *,
                   example_input: Any = None) -> dict[str, Any]:
    """Parameter counts, connectivity, units alive and footprint of ``model``.

    ``masks`` (optional) removes entries on top of the zeros already in the weights; its
    structure is reused. ``example_input`` is only needed for models ``torch.fx`` cannot
    trace. Returns a JSON-serialisable dict with NeuroBench names (``ParameterCount``,
    ``Footprint``, ``ConnectionSparsity``) and ours, plus a ``layers`` table.
    """
    structure = masks.structure if masks is not None else discover(model, example_input)
    prunable_names = (
        set(masks.names()) if masks is not None else {la.name for la in structure.prunable()}
    )
    with torch.no_grad():
        kept = kept_entries(structure, masks)
        alive, has_input, has_output = alive_units(structure, kept)
        layers: dict[str, dict[str, Any]] = {}
        for layer in structure.layers:
            effective = _restrict(kept[layer.name], alive[layer.name],
                                  _input_channels(layer, alive), layer.module)
            layers[layer.name] = _layer_record(
                layer, kept[layer.name], effective, alive[layer.name], has_input[layer.name],
                layer.name in prunable_names, _mask_conflicts(layer, masks),
            )
        kept_by_module = {id(la.module): int(kept[la.name].sum()) for la in structure.layers}
        removable = removable_units(structure, alive, has_output)
        result = _global_record(layers, prunable_names)
        result.update({
            "ParameterCount": sum(p.numel() for p in model.parameters()),
            "ParameterCount_nonzero": _nonzero_parameters(model, structure, kept),
            "Footprint": footprint_bytes(model),
            "Footprint_deployable": deployable_footprint_bytes(model, structure, removable),
            "ConnectionSparsity": connection_sparsity(model, kept_by_module),
            "masks": None if masks is None else masks.mode,
            "layers": layers,
        })
    return result


def _global_record(layers: dict[str, dict[str, Any]], prunable: set[str]) -> dict[str, Any]:
    def total(key: str, names: list[str]) -> int:
        return sum(layers[n][key] for n in names)

    pr = [n for n in layers if n in prunable]
    every = list(layers)
    connectivity = _ratio(total("weights_nonzero", pr), total("weights_total", pr))
    return {
        "Connectivity": connectivity,
        "Connectivity_all": _ratio(total("weights_nonzero", every), total("weights_total", every)),
        "Connectivity_effective": _ratio(total("weights_effective", pr),
                                         total("weights_total", pr)),
        "Compression": 1.0 - connectivity,
        "UnitsAlive": {"alive": total("units_alive", pr), "total": total("units_total", pr),
                       "alive_all": total("units_alive", every),
                       "total_all": total("units_total", every)},
    }
