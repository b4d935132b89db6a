"""Baselines on a schedule: magnitude pruning (unstructured or structured) and random pruning.

Both prune to a target connectivity (``devprune.pruning.targets``) on one of two schedules
(``devprune.pruning.schedules``):

``gradual``
    the cubic schedule of Zhu & Gupta (2017) from step ``start`` to step ``end``;
``oneshot``
    everything at step ``end`` (train, prune once, fine-tune for the remaining epochs).

Granularity ``weight`` ranks single weights; ``unit`` ranks filters / neurons by the Lp norm
of their incoming weights, the structured peer of DPAP's unit removal. Scope ``global``
draws one threshold over all pruned layers, ``layer`` keeps the target in every layer (a
per-layer target implies it). ``random`` gives every entry a fixed random priority drawn from
``seed``: the floor every method must beat. Pruned weights are held at exactly zero (hard
masks), and a pruned entry never returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from devprune.pruning import criteria
from devprune.pruning.base import register_pruner, structural_step
from devprune.pruning.schedules import StepClock, gmp_keep_fraction
from devprune.pruning.targeted import TargetPruner, TargetSettings


@dataclass
class ScheduledConfig(TargetSettings):
    """``prune.magnitude`` / ``prune.random``: a baseline pruned to a target on a schedule
    (``target``, ``include``, ``exclude``, ``include_output``, ``mode``: see
    :class:`TargetSettings`).

    Attributes:
        scope: ``global`` (one threshold over all pruned layers) or ``layer``.
        granularity: ``weight`` (unstructured) or ``unit`` (whole filters / neurons).
        norm: 1 or 2, the norm ranking units (``granularity: unit``).
        schedule: ``gradual`` (cubic, from ``start`` to ``end``) or ``oneshot`` (at ``end``).
        start / end: step indices (epochs, or periods of ``every_batches`` batches).
        every_batches: 0 = a step at every epoch end; N = a step every N training batches.
        seed: the random priorities of ``random`` (unused by ``magnitude``); None = drawn
            from torch's seed when the pruner is built (the run's ``train.seed``).
    """

    method: ClassVar[str] = "scheduled"

    scope: Literal["global", "layer"] = "global"
    granularity: Literal["weight", "unit"] = "weight"
    norm: int = 1
    schedule: Literal["gradual", "oneshot"] = "gradual"
    start: int = 0
    end: int = 2
    every_batches: int = 0
    seed: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require(self.norm in (1, 2), "norm", f"{self.norm!r} is not 1 or 2")
        self.require(self.start >= 0 and self.every_batches >= 0, "start / every_batches",
                     "must be >= 0")
        self.require(self.end >= 0, "end", "must be >= 0")
        self.require(self.end >= self.start or self.schedule == "oneshot", "end",
                     f"{self.end} precedes start {self.start}; the schedule prunes from step "
                     "start to step end (end >= start)")

    @property
    def first_step(self) -> int:
        return self.end if self.schedule == "oneshot" else self.start


@dataclass
class MagnitudeConfig(ScheduledConfig):
    method: ClassVar[str] = "magnitude"


@dataclass
class RandomConfig(ScheduledConfig):
    method: ClassVar[str] = "random"


class ScheduledPruner(TargetPruner):
    """Prunes the lowest-scoring weights or units down to the schedule's kept fraction."""

    name = "scheduled"
    config_class: ClassVar[type[ScheduledConfig]] = ScheduledConfig
    cfg: ScheduledConfig

    def __init__(self, model: nn.Module, example_input: Any = None,
                 config: ScheduledConfig | None = None) -> None:
        super().__init__(model, example_input, config)
        self.clock = StepClock(self.cfg.every_batches)
        self.pending: list[dict[str, Any]] = []

    # -- criterion (overridden by the random baseline) ---------------------------------------
    def scores(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        if self.cfg.granularity == "unit":
            return criteria.unit_norm_scores(weight, self.cfg.norm)
        return criteria.magnitude_scores(weight)

    # -- hooks ------------------------------------------------------------------------------
    def on_batch_end(self) -> None:
        step = self.clock.batch_done()
        if step is not None:
            self.pending.append(self.prune_step(step))

    def on_epoch_end(self, epoch: int) -> dict[str, Any]:
        step = self.clock.epoch_done()
        if step is not None:
            self.pending.append(self.prune_step(step))
        events, self.pending = [e for e in self.pending if e["pruned"]], []
        out: dict[str, Any] = {"connectivity": self.masks.weight_connectivity(),
                               "mask_connectivity": self.masks.connectivity()}
        if events:
            out.update(steps=[e["step"] for e in events], keep_target=events[-1]["keep"],
                       weights_removed=sum(e["removed"] for e in events))
        return out

    # -- the structural step ----------------------------------------------------------------
    def keep_fractions(self, step: int) -> dict[str, float]:
        """Each layer's kept fraction after ``step`` (the global one for every layer when
        the scope is global)."""
        cfg = self.cfg
        start = cfg.first_step
        return {name: gmp_keep_fraction(step, start, cfg.end, final)
                for name, final in self.fractions.items()}

    @structural_step
    @torch.no_grad()
    def prune_step(self, step: int) -> dict[str, Any]:
        if step < self.cfg.first_step or step > self.cfg.end:
            return {"step": step, "pruned": False}
        fractions = self.keep_fractions(step)
        before = sum(int(self.masks[n].sum()) for n in self.masks.names())
        keep = self._select(fractions)
        for name, kept in keep.items():
            self._restrict(name, kept)
        self.commit_masks()
        after = sum(int(self.masks[n].sum()) for n in self.masks.names())
        return {"step": step, "pruned": True, "keep": next(iter(fractions.values())),
                "removed": before - after}

    def _select(self, fractions: dict[str, float]) -> dict[str, torch.Tensor]:
        unit = self.cfg.granularity == "unit"
        scores, alive = {}, {}
        for la in self.layers:
            scores[la.name] = self.scores(la.name, la.weight)
            alive[la.name] = self.masks.unit_alive(la.name) if unit else self.masks[la.name]
        if self.per_layer:
            return criteria.layerwise_keep(scores, alive, fractions)
        fraction = next(iter(fractions.values()))
        if not unit:
            return criteria.global_keep(scores, alive, fraction)
        sizes = {la.name: la.weight[0].numel() for la in self.layers}
        return criteria.global_keep(criteria.normalised_per_layer(scores, alive), alive,
                                    fraction, sizes)

    def _restrict(self, name: str, kept: torch.Tensor) -> None:
        if self.cfg.granularity == "unit":
            self.masks.prune_units(name, ~kept)
        else:
            self.masks.prune_synapses(name, ~kept)

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "clock": self.clock.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.clock.load_state_dict(state["clock"])


class MagnitudePruner(ScheduledPruner):
    name = "magnitude"
    config_class = MagnitudeConfig


class RandomPruner(ScheduledPruner):
    name = "random"
    config_class = RandomConfig

    def __init__(self, model: nn.Module, example_input: Any = None,
                 config: ScheduledConfig | None = None) -> None:
        super().__init__(model, example_input, config)
        # Fixed at construction so that resume (which rebuilds the pruner after seeding torch
        # the same way) draws the same priorities.
        self.seed = self.cfg.seed if self.cfg.seed is not None else torch.initial_seed()

    def scores(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        salt = [la.name for la in self.layers].index(name)
        shape = weight.shape[:1] if self.cfg.granularity == "unit" else weight.shape
        return criteria.random_scores(tuple(shape), self.seed, salt).to(weight.device)


register_pruner("magnitude", MagnitudePruner, MagnitudeConfig,
                "baseline: weight / unit-norm magnitude, gradual (cubic) or one-shot, to a "
                "target connectivity")
register_pruner("random", RandomPruner, RandomConfig,
                "baseline: random weights / units on the magnitude schedules (the floor)")
