"""Dynamic sparse training baselines with regrowth: SET and RigL, the peers of SD-SNN's
regeneration.

The network starts sparse: each pruned layer keeps a random ``target`` fraction of its
weights (uniform density per layer, or the per-layer mapping). Every ``every_batches``
batches until step ``end``, each layer drops the ``alpha_t`` share of its kept weights with
the smallest magnitude and regrows as many pruned ones, so connectivity never changes:

``set`` (Mocanu et al. 2018)
    regrows at random;
``rigl`` (Evci et al. 2020)
    regrows the entries with the largest dense gradient magnitude on the batch that ends the
    period (taken before hard masking zeroes it).

``alpha_t = alpha / 2 * (1 + cos(pi * t / end))`` (RigL's cosine decay). A regrown weight
starts at exactly zero, with zero optimizer state, so it enters the network smoothly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from devprune.pruning import criteria
from devprune.pruning.base import register_pruner, structural_step
from devprune.pruning.schedules import StepClock
from devprune.pruning.targeted import TargetPruner, TargetSettings


@dataclass
class DSTConfig(TargetSettings):
    """``prune.set`` / ``prune.rigl``: constant-connectivity training with drop and regrowth
    (``target``: kept fraction of every pruned layer, a number for all or a per-layer
    mapping; ``include``, ``exclude``, ``include_output``, ``mode``: see
    :class:`TargetSettings`).

    Attributes:
        every_batches: batches between two drop-and-regrow steps (> 0).
        end: the last step index that rewires (later the mask is fixed).
        alpha: share of a layer's kept weights replaced at step 0 (cosine-decayed to 0).
        regrow: ``random`` (SET) or ``gradient`` (RigL); None = the method's own.
        seed: the initial random mask and SET's draws; None = torch's seed at build time.
    """

    method: ClassVar[str] = "dst"
    default_regrow: ClassVar[str] = "gradient"

    every_batches: int = 100
    end: int = 10
    alpha: float = 0.3
    regrow: Literal["random", "gradient"] | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.regrow is None:
            self.regrow = self.default_regrow
        self.require(self.every_batches >= 1, "every_batches",
                     "must be >= 1 (batches between rewirings)")
        self.require(self.end >= 0, "end", "must be >= 0")
        self.require(0.0 <= self.alpha < 1.0 and math.isfinite(self.alpha), "alpha",
                     f"{self.alpha!r} is not a share in [0, 1)")


@dataclass
class SETConfig(DSTConfig):
    method: ClassVar[str] = "set"
    default_regrow: ClassVar[str] = "random"


@dataclass
class RigLConfig(DSTConfig):
    method: ClassVar[str] = "rigl"
    default_regrow: ClassVar[str] = "gradient"


def rewire_share(step: int, end: int, alpha: float) -> float:
    """``alpha_t``: the cosine-decayed share of kept weights replaced at ``step``."""
    if step > end:
        return 0.0
    return alpha / 2.0 * (1.0 + math.cos(math.pi * step / max(end, 1)))


def drop_and_grow(mask: torch.Tensor, weight: torch.Tensor, grow_scores: torch.Tensor,
                  share: float) -> tuple[torch.Tensor, int]:
    """One layer's rewiring: drop the ``share`` of kept entries with the smallest ``|w|``,
    regrow as many among the entries that were pruned before this step (a just-dropped
    entry does not come straight back), highest ``grow_scores`` first. Returns (new mask,
    entries moved); the number of kept entries is unchanged."""
    kept = int(mask.sum())
    moved = min(math.floor(share * kept), mask.numel() - kept)
    if moved <= 0:
        return mask.clone(), 0
    survivors = criteria.top_k_mask(criteria.magnitude_scores(weight), mask, kept - moved)
    grown = criteria.top_k_mask(grow_scores, ~mask, moved)
    return survivors | grown, moved


class DynamicSparsePruner(TargetPruner):
    """Random sparse start, then periodic magnitude drop and random / gradient regrowth."""

    name = "dst"
    config_class: ClassVar[type[DSTConfig]] = DSTConfig
    cfg: DSTConfig

    def __init__(self, model: nn.Module, example_input: Any = None,
                 config: DSTConfig | None = None) -> None:
        super().__init__(model, example_input, config)
        self.seed = self.cfg.seed if self.cfg.seed is not None else torch.initial_seed()
        self.clock = StepClock(self.cfg.every_batches)
        self.grads: dict[str, torch.Tensor] = {}
        self.moved = 0
        self._sparse_start(self.fractions)

    @torch.no_grad()
    def _sparse_start(self, fractions: dict[str, float]) -> None:
        for i, la in enumerate(self.layers):
            priority = criteria.random_scores(tuple(la.weight.shape), self.seed, i)
            keep = criteria.top_k_mask(priority, torch.ones_like(priority, dtype=torch.bool),
                                       criteria.keep_count(fractions[la.name], priority.numel()))
            self.masks.prune_synapses(la.name, ~keep)
        self.masks.apply()

    def _grow_scores(self, index: int, layer: Any, step: int) -> torch.Tensor:
        if self.cfg.regrow == "gradient":
            grad = self.grads.get(layer.name)
            if grad is not None:
                return grad.abs()
        # SET (and a layer with no gradient this period): a fresh random draw per step.
        return criteria.random_scores(tuple(layer.weight.shape), self.seed,
                                      1_000 * (step + 1) + index).to(layer.weight.device)

    # -- hooks ------------------------------------------------------------------------------
    @torch.no_grad()
    def on_after_backward(self) -> None:
        # The dense gradient of masked weights is RigL's growth signal: keep it before the
        # base class zeroes it, on the batch that ends a rewiring period only.
        if self.cfg.regrow == "gradient" and self.clock.next_batch_is_step():
            self.grads = {la.name: la.weight.grad.detach().clone() for la in self.layers
                          if la.weight.grad is not None}
        super().on_after_backward()

    def on_batch_end(self) -> None:
        step = self.clock.batch_done()
        if step is not None and step <= self.cfg.end:
            self.moved += self.rewire(step)

    def on_epoch_end(self, epoch: int) -> dict[str, Any]:
        moved, self.moved = self.moved, 0
        # "regrown": the key the epoch line shows (as for SD-SNN)
        return {"connectivity": self.masks.weight_connectivity(),
                "mask_connectivity": self.masks.connectivity(), "regrown": moved}

    @structural_step
    @torch.no_grad()
    def rewire(self, step: int) -> int:
        """One drop-and-regrow step over every pruned layer; returns the entries moved."""
        share = rewire_share(step, self.cfg.end, self.cfg.alpha)
        total = 0
        for i, la in enumerate(self.layers):
            new, moved = drop_and_grow(self.masks[la.name], la.weight,
                                       self._grow_scores(i, la, step), share)
            grown = new & ~self.masks[la.name]
            self.masks.prune_synapses(la.name, ~new)
            self.masks.regrow(la.name, grown)
            la.weight.masked_fill_(grown, 0.0)  # a regrown weight starts at zero
            total += moved
        self.grads = {}
        self.commit_masks()
        return total

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "clock": self.clock.state_dict(), "moved": self.moved,
                "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.clock.load_state_dict(state["clock"])
        self.moved = int(state["moved"])
        self.seed = int(state["seed"])


class SETPruner(DynamicSparsePruner):
    name = "set"
    config_class = SETConfig


class RigLPruner(DynamicSparsePruner):
    name = "rigl"
    config_class = RigLConfig


register_pruner("set", SETPruner, SETConfig,
                "baseline: SET, constant sparsity with magnitude drop and random regrowth")
register_pruner("rigl", RigLPruner, RigLConfig,
                "baseline: RigL, constant sparsity with magnitude drop and gradient regrowth")
