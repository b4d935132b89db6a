"""Compaction of a model *while it trains*: in-place removal of dead units, and the maps that
carry any tensor of the model (weights, optimizer moments, masks) between the full and the
shrunk shapes.

:func:`compact` (surgery.py) returns a smaller deep copy; training needs the *same* model
object to shrink (the pruner's hooks sit on its modules), with every tensor whose shape follows
a unit sliced the same way. Here a shrink is described by an :class:`IndexMap`: for each
``state_dict`` key that changes, the ``(dim, kept indices)`` slices to apply. The same map
slices the optimizer state of the parameter (Adam moments, SGD momentum have the parameter's
shape) and, read backwards, scatters a shrunk tensor into zeros of the full shape
(:func:`expand_tensor`), which is how a shrunk checkpoint is read by commands that work on the
full architecture (eval, compact, export).

Semantics are those of :func:`compact`: the shrunk model computes what the hard-masked model
computes. Nothing here consumes random numbers (the plan is found on a copy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from devprune.compact.coupling import channel_tensors, coupled_modules
from devprune.compact.plan import RemovalPlan, expand_blocks
from devprune.compact.surgery import apply_hard_masks, copy_model, plan_removal
from devprune.cpu_ops import any_trailing, count
from devprune.kinds import CHANNEL_SIZE_ATTRIBUTES, unit_size_attributes
from devprune.masks import MaskSet
from devprune.structure import ModelStructure, discover

Slices = list[tuple[int, torch.Tensor]]
IndexMap = dict[str, Slices]  # state_dict key -> (dim, kept indices) applied in order


@dataclass
class Keep:
    """Kept output units and input columns per weight layer (``None``: every column),
    relative to some reference architecture (the current model, or the original one)."""

    keep_out: dict[str, torch.Tensor]
    keep_in: dict[str, torch.Tensor | None]

    def removes_anything(self, structure: ModelStructure) -> bool:
        for layer in structure.layers:
            if self.keep_out[layer.name].numel() != layer.module.weight.shape[0]:
                return True
            cols = self.keep_in[layer.name]
            if cols is not None and cols.numel() != layer.module.weight.shape[1]:
                return True
        return False

    def then(self, later: Keep) -> Keep:
        """The composition: first ``self``, then ``later`` (indices relative to the result
        of ``self``); the result is relative to ``self``'s reference."""
        keep_in: dict[str, torch.Tensor | None] = {}
        for name, cols in later.keep_in.items():
            first = self.keep_in.get(name)
            keep_in[name] = first if cols is None else (cols if first is None else first[cols])
        return Keep({n: self.keep_out[n][k] for n, k in later.keep_out.items()}, keep_in)

    def state(self) -> dict[str, Any]:
        return {"keep_out": {k: v.cpu().clone() for k, v in self.keep_out.items()},
                "keep_in": {k: None if v is None else v.cpu().clone()
                            for k, v in self.keep_in.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Keep:
        return cls({k: torch.as_tensor(v).long() for k, v in state["keep_out"].items()},
                   {k: None if v is None else torch.as_tensor(v).long()
                    for k, v in state["keep_in"].items()})


def live_plan(model: nn.Module, masks: MaskSet, example_input: Any = None,
              unread: frozenset[str] = frozenset()) -> tuple[RemovalPlan, dict[str, str]]:
    """The removal plan for ``model`` under ``masks`` (hard mode) and its coupled modules,
    found on a copy so that probing neurons on zeros leaves the live model's state alone.
    ``unread``: layers whose units nothing reads go too (``Pruner.shrinkable_unread``)."""
    clone = copy_model(model)
    structure = discover(clone, example_input)
    apply_hard_masks(structure, masks)
    return plan_removal(clone, structure, masks, unread=unread)


def coupling_of(model: nn.Module, structure: ModelStructure) -> dict[str, str]:
    """Coupled non-weight modules (BatchNorm, per-channel neurons) -> their layer class."""
    class_of = {la.name: structure.group_members(la.name)[0] for la in structure.layers}
    coupled, _ = coupled_modules(model, structure, class_of)
    return coupled


def index_map(model: nn.Module, structure: ModelStructure, coupled: dict[str, str],
              keep: Keep) -> IndexMap:
    """The slices of every ``state_dict`` entry of ``model`` (of ``structure``'s sizes) that
    ``keep`` shrinks: weight layers by rows and columns, coupled modules by channels."""
    modules = dict(model.named_modules())
    slices: IndexMap = {}
    units: dict[str, int] = {}
    keep_of_class: dict[str, torch.Tensor] = {}
    for layer in structure.layers:
        rows = keep.keep_out[layer.name]
        ops: Slices = [(0, rows)]
        if keep.keep_in[layer.name] is not None:
            ops.append((1, keep.keep_in[layer.name]))
        slices[_key(layer.name, "weight")] = ops
        if getattr(layer.module, "bias", None) is not None:
            slices[_key(layer.name, "bias")] = [(0, rows)]
        cls = structure.group_members(layer.name)[0]
        units[cls] = layer.module.weight.shape[0]
        keep_of_class[cls] = rows
    for name, cls in coupled.items():
        for tname, tensor in channel_tensors(modules[name]).items():
            length = tensor.shape[0]
            if length % units[cls]:
                continue  # not indexed by these units
            rows = keep_of_class[cls]
            index = rows if length == units[cls] else expand_blocks(rows, length // units[cls])
            slices[_key(name, tname)] = [(0, index)]
    return slices


def _key(module: str, tensor: str) -> str:
    return f"{module}.{tensor}" if module else tensor


def slice_tensor(tensor: torch.Tensor, ops: Slices) -> torch.Tensor:
    for dim, index in ops:
        tensor = tensor.index_select(dim, index.to(tensor.device))
    return tensor.contiguous()


def expand_tensor(tensor: torch.Tensor, ops: Slices, full_shape: torch.Size | tuple[int, ...],
                  fill: float | bool = 0) -> torch.Tensor:
    """Inverse of :func:`slice_tensor`: ``tensor`` scattered into a ``full_shape`` tensor of
    ``fill`` (removed entries)."""
    shapes = [tuple(full_shape)]
    for dim, index in ops[:-1]:
        shape = list(shapes[-1])
        shape[dim] = index.numel()
        shapes.append(tuple(shape))
    for (dim, index), shape in zip(reversed(ops), reversed(shapes), strict=True):
        out = torch.full(shape, fill, dtype=tensor.dtype, device=tensor.device)
        tensor = out.index_copy_(dim, index.to(tensor.device), tensor)
    return tensor


@torch.no_grad()
def shrink_model_(model: nn.Module, slices: IndexMap) -> dict[nn.Parameter, nn.Parameter]:
    """Slice ``model``'s tensors in place as ``slices`` says (parameters become new
    ``nn.Parameter`` objects, buffers new tensors) and update the modules' size attributes.
    Returns ``{old parameter: new parameter}`` for the optimizer."""
    modules = dict(model.named_modules())
    replaced: dict[nn.Parameter, nn.Parameter] = {}
    for key, ops in slices.items():
        owner, _, tname = key.rpartition(".")
        module = modules[owner]
        old = getattr(module, tname)
        new = slice_tensor(old.detach(), ops)
        if isinstance(old, nn.Parameter):
            fresh = nn.Parameter(new, requires_grad=old.requires_grad)
            setattr(module, tname, fresh)
            replaced[old] = fresh
        else:
            module._buffers[tname] = new
        for dim, index in ops:
            _resize_attributes(module, tname, dim, old.shape[dim], index.numel())
    return replaced


def _resize_attributes(module: nn.Module, tname: str, dim: int, before: int, after: int) -> None:
    units, inputs = unit_size_attributes(module)  # a weight layer's, if it is one
    if tname == "weight" and hasattr(module, units):
        setattr(module, units if dim == 0 else inputs, after)
    elif dim == 0:
        for attr in CHANNEL_SIZE_ATTRIBUTES:
            if getattr(module, attr, None) == before:
                setattr(module, attr, after)


@torch.no_grad()
def shrink_optimizer_(optimizer: torch.optim.Optimizer, replaced: dict[nn.Parameter, nn.Parameter],
                      slices_of: dict[nn.Parameter, Slices]) -> None:
    """Point ``optimizer`` at the new parameters and slice their state (every state tensor of
    the parameter's shape: Adam/AdamW moments, SGD momentum buffers; scalars such as Adam's
    ``step`` are kept)."""
    for group in optimizer.param_groups:
        group["params"] = [replaced.get(p, p) for p in group["params"]]
    for old, new in replaced.items():
        state = optimizer.state.pop(old, None)
        if state is None:
            continue
        optimizer.state[new] = {
            k: slice_tensor(v, slices_of[old]) if torch.is_tensor(v) and v.shape == old.shape
            else v
            for k, v in state.items()
        }


def removed_columns(cols: torch.Tensor | None, width: int) -> torch.Tensor:
    """The columns of a ``width``-column tensor that ``cols`` (kept, ascending; None: all)
    does not keep, ascending."""
    if cols is None:
        return torch.zeros(0, dtype=torch.long)
    gone = torch.ones(width, dtype=torch.bool)
    gone[cols.cpu()] = False
    return gone.nonzero().flatten()


def shrink_with_removed(tensor: torch.Tensor, removed: torch.Tensor | None, rows: torch.Tensor,
                        cols: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``tensor`` (``[rows, columns, ...]``) sliced to the kept ``rows`` and ``cols``, and
    ``removed`` (the same rows' entries of columns removed earlier; None: none) with the
    kept rows' entries of the columns removed now appended. The one rule of every tensor
    that keeps its removed columns (masks, DPAP's statistics and reserves), so that their
    columns line up: earlier removals first, each in ascending order."""
    kept_rows = tensor.index_select(0, rows.to(tensor.device))
    if removed is not None:
        removed = removed.index_select(0, rows.to(removed.device))
    gone = removed_columns(cols, tensor.shape[1]).to(tensor.device)
    if gone.numel():
        now = kept_rows.index_select(1, gone)
        removed = now if removed is None else torch.cat([removed, now], 1)
        kept_rows = kept_rows.index_select(1, cols.to(tensor.device))
    return kept_rows.contiguous(), None if removed is None else removed.contiguous()


class LiveMaskSet(MaskSet):
    """The masks of a model that shrinks while it trains (``train.compact_every``).

    A shrink that removes input columns of a masked layer (their units died) keeps those
    columns' mask entries in the kept rows: ``removed[name]`` (bool ``[rows, removed
    columns, *kernel]``) and ``removed_index[name]`` (those columns in the architecture's own
    numbering). The masked model still holds these entries, so here they count as there: a
    unit lives while any entry of its row is kept, these included; a unit's death clears
    them; a method may still prune them (:meth:`prune_removed`); the full-size view scatters
    them back (:func:`expand_mask_state`). Without removed columns, a plain :class:`MaskSet`.
    """

    def __init__(self, structure: ModelStructure, layers: list[str] | None = None,
                 mode: str = "default") -> None:
        super().__init__(structure, layers, mode)
        self.removed: dict[str, torch.Tensor] = {}
        self.removed_index: dict[str, torch.Tensor] = {}
        # entries of each mask in the architecture the set was built for (before any shrink)
        self.full_entries = {name: mask.numel() for name, mask in self.masks.items()}

    def weight_connectivity(self, name: str | None = None) -> float:
        """Over the architecture's own sizes: a shrink removed only entries that were masked
        or zero (dead rows, and the columns of dead inputs, which hard mode zeroes)."""
        names = [name] if name is not None else self.names()
        now = sum(self.masks[n].numel() for n in names)
        total = sum(self.full_entries[n] for n in names)
        return super().weight_connectivity(name) * now / max(total, 1)

    def connectivity(self) -> float:
        kept = sum(count(m) for m in self.masks.values())
        kept += sum(count(m) for m in self.removed.values())
        return kept / max(sum(self.full_entries.values()), 1)

    def unit_alive(self, name: str) -> torch.Tensor:
        removed = self.removed.get(name)
        own = super().unit_alive(name)
        if removed is None:
            return own
        return self._cached("alive_with_removed", name,
                            lambda: own | any_trailing(removed, 1).to(own.device))

    def removed_kernel_mask(self, name: str) -> torch.Tensor:
        """:meth:`kernel_mask` of the removed columns (``[rows, removed columns]``)."""
        removed = self.removed[name]
        return any_trailing(removed, 2) if removed.dim() > 2 else removed

    def kept_in_rows(self, name: str, rows: torch.Tensor) -> int:
        """Entries of ``name``'s mask kept in the output units ``rows`` (a bool vector), the
        removed columns' included: what :meth:`prune_units` of those units takes away."""
        removed = self.removed.get(name)
        extra = 0 if removed is None else count(removed[rows.to(removed.device)])
        return count(self.masks[name][rows.to(self.masks[name].device)]) + extra

    def prune_units(self, name: str, units: torch.Tensor) -> int:
        alive_before = self.unit_alive(name)
        index = self._as_index(units, alive_before.numel())
        for member in self.structure.recurrent_partners(name):
            if member in self.removed:
                self.removed[member][index.to(self.removed[member].device)] = False
        super().prune_units(name, index)
        return count(alive_before & ~self.unit_alive(name))

    def prune_removed(self, name: str, remove: torch.Tensor) -> int:
        """:meth:`prune_synapses` on the removed columns' entries (``remove`` shaped like
        ``removed[name]`` or, for a conv, like its kernel mask); returns entries removed."""
        removed = self.removed[name]
        remove = remove.to(device=removed.device, dtype=torch.bool)
        if remove.shape != removed.shape:
            remove = remove.reshape(*remove.shape, *([1] * (removed.dim() - 2)))
        return self._clear_entries(removed, remove)

    def shrink_(self, keep: Keep) -> None:
        """Slice every mask like its layer's weight, keeping the removed columns' entries,
        and update the structure's sizes (call after the model shrank: the sizes are read
        from the modules)."""
        for name in self.names():
            cols, width = keep.keep_in[name], self.masks[name].shape[1]
            numbers = self._column_numbers(name, width)
            self.masks[name], removed = shrink_with_removed(
                self.masks[name], self.removed.get(name), keep.keep_out[name], cols)
            if removed is not None:
                self.removed[name] = removed
                gone = numbers[removed_columns(cols, width)]
                self.removed_index[name] = torch.cat([self.removed_index.get(name, gone[:0]),
                                                      gone])
        for layer in self.structure.layers:
            layer.num_units, layer.fan_in = layer.module.weight.shape[:2]
        self.invalidate()

    def _column_numbers(self, name: str, width: int) -> torch.Tensor:
        """The architecture's numbers of ``name``'s ``width`` current columns (ascending)."""
        gone = self.removed_index.get(name)
        if gone is None:
            return torch.arange(width)
        return removed_columns(gone.sort().values, width + gone.numel())

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.removed:
            state["removed_columns"] = {
                name: {"index": self.removed_index[name].clone(), "mask": mask.cpu().clone()}
                for name, mask in self.removed.items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        saved = state.get("removed_columns") or {}
        self.removed = {n: s["mask"].to(self.masks[n].device, torch.bool)
                        for n, s in saved.items()}
        self.removed_index = {n: torch.as_tensor(s["index"]).long() for n, s in saved.items()}
        self.invalidate()

    def to(self, device: torch.device | str) -> LiveMaskSet:
        super().to(device)
        self.removed = {k: v.to(device) for k, v in self.removed.items()}
        return self


# --------------------------------------------------------------------------------------------
# full-size views of a shrunk model (measurement, and commands reading a shrunk checkpoint)
# --------------------------------------------------------------------------------------------
def identity_keep(structure: ModelStructure) -> Keep:
    return Keep({la.name: torch.arange(la.module.weight.shape[0]) for la in structure.layers},
                dict.fromkeys((la.name for la in structure.layers), None))


def full_size_map(full_model: nn.Module, keep: Keep, example_input: Any = None
                  ) -> tuple[ModelStructure, IndexMap]:
    """The structure of ``full_model`` (the original architecture) and the slices that take
    it to the shrunk model ``keep`` (cumulative, relative to it) describes."""
    structure = discover(full_model, example_input)
    return structure, index_map(full_model, structure, coupling_of(full_model, structure), keep)


def expand_state_dict(full_model: nn.Module, state: dict[str, torch.Tensor],
                      slices: IndexMap) -> dict[str, torch.Tensor]:
    """A shrunk model's ``state`` scattered into ``full_model``'s shapes; removed entries are
    zero (what the hard-masked model holds there: dead units have zero weights, bias and BN
    affine, and a zero BN running variance gives zero on a zero input too)."""
    shapes = {k: v.shape for k, v in full_model.state_dict().items()}
    return {k: expand_tensor(v, slices[k], shapes[k]) if k in slices and k in shapes else v
            for k, v in state.items()}


def expand_mask_state(state: dict[str, Any], structure: ModelStructure, slices: IndexMap
                      ) -> dict[str, Any]:
    """A shrunk run's ``MaskSet.state_dict()`` in the full architecture's shapes: removed
    entries masked, except the removed columns' entries of kept rows, which a
    :class:`LiveMaskSet` keeps as the masked run holds them."""
    masks = {name: expand_tensor(mask.bool(), slices[_key(name, "weight")],
                                 structure[name].module.weight.shape, fill=False)
             for name, mask in state.get("masks", {}).items()}
    for name, removed in (state.get("removed_columns") or {}).items():
        rows = slices[_key(name, "weight")][0][1].to(masks[name].device)  # kept, in the full
        part = masks[name].index_select(0, rows)
        part[:, torch.as_tensor(removed["index"]).long()] = removed["mask"].to(part.device)
        masks[name].index_copy_(0, rows, part)
    return {k: v for k, v in state.items() if k != "removed_columns"} | {"masks": masks}


def expand_checkpoint(full_model: nn.Module, payload: dict[str, Any],
                      example_input: Any = None) -> dict[str, Any]:
    """``payload`` (a run checkpoint) with its model weights and masks in the shapes of
    ``full_model`` (built from the run's config), when it was written after an in-training
    shrink; unchanged otherwise. Optimizer and pruner state stay shrunk (resume restores
    them through the shrink itself)."""
    entry = payload.get("compaction")
    if not entry:
        return payload
    structure, slices = full_size_map(full_model, Keep.from_state(entry["keep"]), example_input)
    out = dict(payload)
    out["model"] = expand_state_dict(full_model, payload["model"], slices)
    if isinstance(payload.get("masks"), dict):
        out["masks"] = expand_mask_state(payload["masks"], structure, slices)
    pruner = payload.get("pruner")
    if isinstance(pruner, dict) and isinstance(pruner.get("masks"), dict):
        out["pruner"] = {**pruner, "masks": expand_mask_state(pruner["masks"], structure, slices)}
    return out
