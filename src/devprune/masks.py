"""Masks over a model's prunable weights, and how they are enforced.

A :class:`MaskSet` holds one boolean mask per prunable weight (same shape as the weight). A
*unit* (filter or neuron) is alive while any entry of its weight-mask row is set, so regrowth
of a single synapse revives a unit without separate bookkeeping.

Two enforcement modes (docs/METHODS.md#modes):

``reference``
    the authors' soft masking: weights are multiplied by the mask at pruning steps only;
    gradients are not masked, so pruned weights retrain until the next pruning step.
``default``
    hard masking: pruned weights, their gradients and their optimizer state stay exactly
    zero; a dead unit also loses its bias and its batch-norm affine; and the input columns of
    a downstream layer that are fed only by dead units are masked too (they can never carry
    signal), so every count and the physical compaction agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from devprune.cpu_ops import (
    all_true,
    any_trailing,
    clear_where,
    count,
    count_kept_nonzero,
    logical_and,
    mul_mask,
)
from devprune.errors import CheckpointError, ConfigError
from devprune.kinds import unit_tensors
from devprune.structure import ModelStructure, PrunableLayer

MODES = ("default", "reference")


class MaskSet:
    """Boolean masks for the prunable layers of one model."""

    def __init__(
        self,
        structure: ModelStructure,
        layers: Iterable[str] | None = None,
        mode: str = "default",
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"prune.mode: {mode!r} is not one of {list(MODES)}")
        self.structure = structure
        self.mode = mode
        names = [la.name for la in structure.prunable()] if layers is None else list(layers)
        self.masks: dict[str, torch.Tensor] = {
            name: torch.ones_like(structure[name].weight, dtype=torch.bool) for name in names
        }
        # Derived masks are needed at every training step in hard mode but change only at
        # pruning steps: cache them, and drop the cache on every edit.
        self._cache: dict[tuple[str, str], Any] = {}

    def invalidate(self) -> None:
        """Forget derived masks; call after editing a mask tensor in place yourself."""
        self._cache.clear()

    def _cached(self, kind: str, name: str, compute: Callable[[], Any]) -> Any:
        key = (kind, name)
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # -- queries ----------------------------------------------------------------------------
    @property
    def hard(self) -> bool:
        return self.mode == "default"

    def __contains__(self, name: str) -> bool:
        return name in self.masks

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.masks[name]

    def names(self) -> list[str]:
        return list(self.masks)

    def unit_alive(self, name: str) -> torch.Tensor:
        """Bool vector over output units: True while any incoming synapse is kept."""
        return self._cached("alive", name, lambda: any_trailing(self.masks[name], 1))

    def kernel_mask(self, name: str) -> torch.Tensor:
        """Conv layers: bool [out, in], True while any entry of the kernel slice is kept."""
        mask = self.masks[name]
        return any_trailing(mask, 2) if mask.dim() > 2 else mask

    def any_pruned(self) -> bool:
        """True once any entry is masked (enforcement before that would be wasted work)."""
        return self._cached(
            "any_pruned", "", lambda: not all(all_true(m) for m in self.masks.values())
        )

    def connectivity(self) -> float:
        """*Mask* connectivity: the fraction of the masked layers' weight entries the masks
        keep (what pruning targets count). Entries a mask keeps that carry no signal (input
        columns fed only by dead units, which hard mode zeroes; zero weights) count as kept;
        :meth:`weight_connectivity` is the measured connectivity."""
        kept = sum(count(m) for m in self.masks.values())
        total = sum(m.numel() for m in self.masks.values())
        return kept / max(total, 1)

    @torch.no_grad()
    def weight_connectivity(self, name: str | None = None) -> float:
        """Connectivity as ``devprune.measure.static_metrics`` reports it (``Connectivity``;
        the runner's ``connectivity``): the fraction of the masked layers' weights (of layer
        ``name`` only, when given) that the masks keep and that are non-zero. Pruners report
        this as ``connectivity`` and :meth:`connectivity` as ``mask_connectivity``."""
        kept = total = 0
        for layer_name in [name] if name is not None else list(self.masks):
            mask = self.masks[layer_name]
            weight = self.structure[layer_name].module.weight.detach()
            kept += count_kept_nonzero(weight, mask.to(weight.device))
            total += mask.numel()
        return kept / max(total, 1)

    # -- edits ------------------------------------------------------------------------------
    def prune_units(self, name: str, units: torch.Tensor) -> int:
        """Remove whole output units (bool vector or index tensor); returns how many of
        ``name``'s died. Units shared through a recurrence (``PrunableLayer.recurrent_of``) lose
        their row in every masked layer of it, so the neuron gets no input at all; its columns
        (in the recurrent weight and in every reader) then follow as dead input columns."""
        alive_before = self.unit_alive(name)
        index = self._as_index(units, alive_before.numel())
        for member in self.structure.recurrent_partners(name):
            if member in self.masks:
                self.masks[member][index] = False
        self.invalidate()
        return count(alive_before & ~self.unit_alive(name))

    def prune_synapses(self, name: str, remove: torch.Tensor) -> int:
        """Remove the entries where ``remove`` is True. For conv layers ``remove`` may be
        ``[out, in]`` (whole kernels) or the full weight shape. Returns entries removed."""
        return self._clear_entries(self.masks[name], self._expand(name, remove))

    def _clear_entries(self, mask: torch.Tensor, remove: torch.Tensor) -> int:
        """Clear the kept entries of ``mask`` (in place) where ``remove`` is True (same
        shape, or broadcastable); returns how many were kept."""
        newly = clear_where(mask, remove)
        if newly:  # an unchanged mask keeps its derived masks (no rescan at the next query)
            self.invalidate()
        return newly

    def regrow(self, name: str, restore: torch.Tensor) -> int:
        """Set entries back to kept (weights keep whatever value they have)."""
        mask = self.masks[name]
        restore = self._expand(name, restore)
        newly = count(~mask & restore)
        mask |= restore
        self.invalidate()
        return newly

    def _expand(self, name: str, sel: torch.Tensor) -> torch.Tensor:
        mask = self.masks[name]
        sel = sel.to(device=mask.device, dtype=torch.bool)
        if sel.shape == mask.shape:
            return sel
        if mask.dim() > 2 and sel.shape == mask.shape[:2]:
            return sel.reshape(*sel.shape, *([1] * (mask.dim() - 2))).expand_as(mask)
        raise ValueError(
            f"selection for {name!r} has shape {tuple(sel.shape)}; expected "
            f"{tuple(mask.shape)} or {tuple(mask.shape[:2])}"
        )

    @staticmethod
    def _as_index(units: torch.Tensor, n: int) -> torch.Tensor:
        units = torch.as_tensor(units)
        if units.dtype == torch.bool:
            if units.numel() != n:
                raise ValueError(f"unit selection has {units.numel()} entries, layer has {n}")
            return units.nonzero().flatten()
        return units.long().flatten()

    # -- effective masks (dead-input columns) -----------------------------------------------
    def effective_mask(self, name: str) -> torch.Tensor:
        """The weight mask with input columns fed only by dead units also removed."""
        return self._cached("effective", name, lambda: self._effective_mask(name))

    def _effective_mask(self, name: str) -> torch.Tensor:
        layer = self.structure[name]
        mask = self.masks[name]
        dead_cols = self.dead_input_columns(layer)
        if dead_cols is None:
            return mask
        shape = [1, -1] + [1] * (mask.dim() - 2)
        return logical_and(mask, ~dead_cols.to(mask.device).reshape(shape))

    def dead_input_columns(self, layer: PrunableLayer) -> torch.Tensor | None:
        """Bool [fan_in]: columns that can only ever receive zeros (None when none can)."""
        if layer.input_is_model_input or layer.input_concat or not layer.producers:
            return None
        live = torch.zeros(layer.fan_in, dtype=torch.bool)
        for producer in layer.producers:
            if producer.name not in self.masks:
                return None  # an unmasked producer keeps every column alive
            alive = self.unit_alive(producer.name).cpu()
            live |= alive.repeat_interleave(producer.block)
        return None if all_true(live) else ~live

    # -- enforcement ------------------------------------------------------------------------
    @torch.no_grad()
    def apply(self) -> None:
        """Zero pruned weights (both modes); in ``default`` mode also dead units' bias/BN
        affine and dead input columns, including those of unmasked layers (the output
        layer) that read dead units."""
        for name in self.masks:
            layer = self.structure[name]
            mask = self.effective_mask(name) if self.hard else self.masks[name]
            weight = layer.module.weight.detach()
            mul_mask(weight, mask, out=weight)
            if self.hard:
                for param in self._unit_params(layer):
                    param.mul_(self.unit_alive(name).to(param.device))
        if self.hard:
            for layer, live in self._unmasked_consumer_columns():
                layer.module.weight.mul_(live)

    def _unmasked_consumer_columns(self) -> list[tuple[PrunableLayer, torch.Tensor]]:
        """(layer, broadcastable live-column mask) for unmasked layers reading dead units."""
        def live_columns(layer: PrunableLayer) -> torch.Tensor | None:
            dead = self.dead_input_columns(layer)
            if dead is None:
                return None
            shape = [1, -1] + [1] * (layer.module.weight.dim() - 2)
            return (~dead).reshape(shape).to(layer.module.weight.device)

        pairs = []
        for layer in self.structure.layers:
            if layer.name in self.masks:
                continue
            live = self._cached("consumer", layer.name, lambda la=layer: live_columns(la))
            if live is not None:
                pairs.append((layer, live))
        return pairs

    @torch.no_grad()
    def mask_gradients(self) -> None:
        """Hard mode: pruned entries receive no update."""
        for name in self.masks:
            layer = self.structure[name]
            grad = layer.module.weight.grad
            if grad is not None:
                mul_mask(grad, self.effective_mask(name), out=grad)
            alive = self.unit_alive(name)
            for param in self._unit_params(layer):
                if param.grad is not None:
                    param.grad.mul_(alive.to(param.device))
        for layer, live in self._unmasked_consumer_columns():
            if layer.module.weight.grad is not None:
                layer.module.weight.grad.mul_(live)

    @torch.no_grad()
    def zero_optimizer_state(self, optimizer: torch.optim.Optimizer) -> None:
        """Zero momentum / Adam moments of pruned entries so nothing drifts back."""
        for name in self.masks:
            layer = self.structure[name]
            pairs = [(layer.module.weight, self.effective_mask(name))]
            alive = self.unit_alive(name)
            pairs += [(p, alive) for p in self._unit_params(layer)]
            for param, keep in pairs:
                for value in optimizer.state.get(param, {}).values():
                    if torch.is_tensor(value) and value.shape == param.shape:
                        value.mul_(keep.to(value.device, value.dtype))

    def _unit_params(self, layer: PrunableLayer) -> list[nn.Parameter]:
        norm = self.structure.modules[layer.norm_name] if layer.norm_name is not None else None
        return unit_tensors(layer.module, norm)

    # -- persistence ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"mode": self.mode, "masks": {k: v.cpu().clone() for k, v in self.masks.items()}}

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("masks", {})
        if set(saved) != set(self.masks):
            raise CheckpointError(
                f"checkpoint masks cover layers {sorted(saved)} but this model's prunable "
                f"layers are {sorted(self.masks)}; the checkpoint is from a different model"
            )
        for name, mask in saved.items():
            if mask.shape != self.masks[name].shape:
                raise CheckpointError(
                    f"checkpoint mask for {name!r} has shape {tuple(mask.shape)}, the model's "
                    f"weight has {tuple(self.masks[name].shape)}"
                )
            self.masks[name] = mask.to(self.masks[name].device, torch.bool)
        self.mode = state.get("mode", self.mode)
        self.invalidate()

    def to(self, device: torch.device | str) -> MaskSet:
        self.masks = {k: v.to(device) for k, v in self.masks.items()}
        self.invalidate()
        return self
