"""Which units of which layer survive compaction: the removal plan.

Everything here reads a :class:`~devprune.structure.ModelStructure` and the unit-alive
vectors of a :class:`~devprune.masks.MaskSet`; nothing touches a module. The rules:

* a unit is removed only when it is dead in every layer whose channels are tied to it by a
  residual add (its *class*: the residual group, or the layer alone);
* classes in ``fixed_groups`` (tied to the model input), output layers and grouped /
  depthwise convolutions keep every unit;
* when a layer reads several producers that are not one residual group (a concatenation,
  or channels mixed with the model input), those producers keep every unit, because the
  columns they feed cannot be told apart safely;
* optionally (``unread``), a unit whose output no kept entry of a kept consumer row reads is
  removed too, even with kept incoming weights: e.g. a conv channel whose every column of
  the next linear was pruned;
* a class whose units are all dead keeps one (zero) unit, so no layer has width 0;
* with ``unit_multiple`` > 1 a class also keeps as many silent dead (zero) units as round its
  width up to that multiple (or to all its units), unless that adds more than
  :data:`MAX_PADDING_SHARE` of its kept width: matrix kernels run markedly slower on ragged
  widths (measured on AVX-512, 1 thread: a 262-wide linear about 15 % slower than a 272-wide
  one, 105 wide 1.1x slower than 112 at batch 32 and 128), but padding pays only while the
  extra units are few (snn-small's conv2 with 22 filters ran as fast as or faster than with
  32: 1.33-1.46x against 1.18-1.35x over the masked model, sessions 7 and 11). A zero unit
  outputs exactly zero, so the outputs stay the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from devprune.masks import MaskSet
from devprune.structure import ModelStructure, PrunableLayer

# Padding beyond this share of a class's kept units costs more multiply-adds than the
# aligned width saves (module docstring).
MAX_PADDING_SHARE = 0.125


@dataclass
class RemovalPlan:
    """Kept output units per layer and kept input columns per layer (``None``: all)."""

    keep_out: dict[str, torch.Tensor]
    keep_in: dict[str, torch.Tensor | None]
    class_of: dict[str, str]  # layer -> representative name of its coupling class
    pinned: dict[str, str] = field(default_factory=dict)  # class -> why nothing is removed



def _class_of(structure: ModelStructure) -> dict[str, str]:
    """Every layer mapped to the first member of its residual group (or itself)."""
    return {la.name: structure.group_members(la.name)[0] for la in structure.layers}


def _pin_reasons(structure: ModelStructure, class_of: dict[str, str]) -> dict[str, str]:
    pinned: dict[str, str] = {}
    for gid in structure.fixed_groups:
        pinned[class_of[structure.residual_groups[gid][0]]] = "residual group tied to the input"
    for layer in structure.layers:
        if layer.is_output:
            pinned[class_of[layer.name]] = "output layer"
        if getattr(layer.module, "groups", 1) != 1:
            pinned[class_of[layer.name]] = "grouped convolution"
            for producer in layer.producers:
                pinned[class_of[producer.name]] = f"feeds grouped convolution {layer.name}"
        producer_classes = {class_of[p.name] for p in layer.producers}
        if layer.input_concat:
            for cls in producer_classes:
                pinned[cls] = f"concatenated into the input of {layer.name}"
        elif len(producer_classes) > 1 or (producer_classes and layer.input_is_model_input):
            for cls in producer_classes:
                pinned[cls] = f"one of several untied inputs of {layer.name} (concatenation?)"
    return pinned


def _dead_units(layer: PrunableLayer, masks: MaskSet) -> torch.Tensor:
    if layer.name not in masks:
        return torch.zeros(layer.num_units, dtype=torch.bool)
    return ~masks.unit_alive(layer.name).cpu()


def _kept_units(
    members: list[PrunableLayer], masks: MaskSet, pinned: bool, loud: torch.Tensor | None,
    unit_multiple: int = 1, unread: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    units = members[0].num_units
    if pinned:
        return torch.arange(units)
    dead = torch.ones(units, dtype=torch.bool)
    for member in members:
        dead &= _dead_units(member, masks)
    if loud is not None:
        dead &= ~loud  # dead but not silent: removing it would change the output
    if unread is not None:  # read by no member's consumers: whatever it emits is unused
        nobody = torch.ones(units, dtype=torch.bool)
        for member in members:
            nobody &= unread[member.name].cpu()
        dead |= nobody
    if bool(dead.all()):
        dead[0] = False  # one zero unit: no layer of width 0
    return _pad_with_dead(dead, unit_multiple)


def padded_width(kept: int, total: int, unit_multiple: int) -> int:
    """The inference layout's width of a class with ``kept`` of ``total`` units: rounded up
    to ``unit_multiple`` (at most ``total``) when that adds at most
    :data:`MAX_PADDING_SHARE` of ``kept``, else ``kept``."""
    target = min(-(-kept // unit_multiple) * unit_multiple, total)
    return target if target - kept <= MAX_PADDING_SHARE * kept else kept


def _pad_with_dead(dead: torch.Tensor, unit_multiple: int) -> torch.Tensor:
    """Indices of the units not ``dead``, plus the first dead ones up to a multiple of
    ``unit_multiple`` kept units (or all units), when that adds at most
    :data:`MAX_PADDING_SHARE` of the kept units."""
    kept = int((~dead).sum())
    target = padded_width(kept, dead.numel(), unit_multiple)
    padding = dead.nonzero().flatten()[: target - kept]
    dead = dead.clone()
    dead[padding] = False
    return (~dead).nonzero().flatten()


def expand_blocks(units: torch.Tensor, block: int) -> torch.Tensor:
    """Unit indices -> the column indices they own after a channel-major flatten."""
    return (units[:, None] * block + torch.arange(block)).flatten()


def build_plan(
    structure: ModelStructure,
    masks: MaskSet,
    extra_pins: dict[str, str] | None = None,
    keep_alive: dict[str, torch.Tensor] | None = None,
    unit_multiple: int = 1,
    unread: dict[str, torch.Tensor] | None = None,
) -> RemovalPlan:
    """``extra_pins``: classes that must keep every unit (with the reason);
    ``keep_alive``: per class, dead units that must stay because they are not silent;
    ``unit_multiple``: round every shrunk class's width up to this multiple with zero units;
    ``unread``: per layer, units nothing reads, removed too (unless pinned)."""
    if unit_multiple < 1:
        raise ValueError(f"unit_multiple must be >= 1, got {unit_multiple}")
    class_of = _class_of(structure)
    pinned = {**(extra_pins or {}), **_pin_reasons(structure, class_of)}
    keep_alive = keep_alive or {}
    members: dict[str, list[PrunableLayer]] = {}
    for layer in structure.layers:
        members.setdefault(class_of[layer.name], []).append(layer)
    kept_by_class = {
        cls: _kept_units(layers, masks, cls in pinned, keep_alive.get(cls), unit_multiple,
                         unread)
        for cls, layers in members.items()
    }
    keep_out = {la.name: kept_by_class[class_of[la.name]] for la in structure.layers}
    keep_in: dict[str, torch.Tensor | None] = {}
    for layer in structure.layers:
        if not layer.producers or layer.input_concat:
            keep_in[layer.name] = None
            continue
        producer = layer.producers[0]  # all producers share one class (else pinned above)
        keep_in[layer.name] = expand_blocks(keep_out[producer.name], producer.block)
    return RemovalPlan(keep_out, keep_in, class_of, pinned)
