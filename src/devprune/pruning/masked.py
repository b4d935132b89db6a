"""Shared plumbing of the methods that prune: structure, masks, their enforcement and state.

Concrete methods (DPAP, SD-SNN) subclass :class:`MaskedPruner` and implement the statistics
and the structural step; this class keeps pruned weights at zero in ``default`` (hard) mode
and stores the masks in the pruner's state.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from torch import nn

from devprune.errors import ConfigError
from devprune.masks import MaskSet
from devprune.pruning.base import Pruner
from devprune.structure import ModelStructure, PrunableLayer, discover


def select_layers(
    structure: ModelStructure,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    include_output: bool = False,
) -> list[PrunableLayer]:
    """Prunable layers chosen by glob patterns over module names (output layer excluded
    unless asked for). Patterns that match nothing are an error: they are usually typos."""
    candidates = structure.prunable(include_output=include_output)
    names = [la.name for la in structure.layers]
    for pattern in [*(include or []), *(exclude or [])]:
        if not fnmatch.filter(names, pattern):
            raise ConfigError(
                f"layer pattern {pattern!r} matches no weight layer; layers are {names}"
            )
    chosen = [
        la for la in candidates
        if (not include or any(fnmatch.fnmatchcase(la.name, p) for p in include))
        and not any(fnmatch.fnmatchcase(la.name, p) for p in exclude or [])
    ]
    if not chosen:
        raise ConfigError("no prunable layer left after prune.include / prune.exclude")
    return chosen


class MaskedPruner(Pruner):
    """A pruner that owns a :class:`MaskSet` over (a selection of) the model's layers."""

    # methods that shrink while training keep removed columns' entries (LiveMaskSet)
    mask_set: type[MaskSet] = MaskSet

    def __init__(
        self,
        model: nn.Module,
        example_input: Any,
        config: Any,
        *,
        mode: str = "default",
        layers: Sequence[PrunableLayer] | None = None,
        structure: ModelStructure | None = None,
    ) -> None:
        super().__init__(model, example_input, config)
        self.structure = structure or discover(model, example_input)
        chosen = layers if layers is not None else self.structure.prunable()
        self.masks = self.mask_set(self.structure, [la.name for la in chosen], mode=mode)

    def on_after_backward(self) -> None:
        if self.masks.hard and self.masks.any_pruned():
            self.masks.mask_gradients()

    def on_after_step(self) -> None:
        if self.masks.hard and self.masks.any_pruned():
            self.masks.apply()

    def recurrent_refusal(self, exclude_setting: str) -> str | None:
        """In-training compaction's refusal for a pruned recurrent layer (None: none is)."""
        for name in self.masks.names():
            if len(self.structure.recurrent_partners(name)) > 1:
                return (f"layer {name!r} is pruned and recurrent: the removal of its "
                        f"recurrent columns is not covered; exclude it with {exclude_setting}")
        return None

    def commit_masks(self) -> None:
        """Make the current masks take effect (called after every structural step)."""
        self.masks.apply()
        if self.masks.hard and self.optimizer is not None:
            self.masks.zero_optimizer_state(self.optimizer)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["masks"] = self.masks.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.masks.load_state_dict(state["masks"])
