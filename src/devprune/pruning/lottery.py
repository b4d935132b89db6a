"""Lottery-ticket baseline: iterative magnitude pruning with weight rewinding.

Frankle & Carbin's recipe as Kim et al. (2022) applied it to SNNs, inside one run: the model
trains for ``round_epochs`` epochs, the smallest-magnitude surviving weights are pruned (global
or per layer), and the surviving weights are rewound to their values at the start of epoch
``rewind_epoch`` (0 = the initialisation). After ``rounds`` rounds the kept fraction is the
target; the ticket then trains for the rest of the run, so a run of ``train.epochs`` epochs
gives the final ticket ``train.epochs - rounds * round_epochs`` epochs. Each round prunes the
same share of the survivors: ``keep_r = target^(r / rounds)``.

On rewinding, the optimizer's per-parameter state (momenta, Adam moments) is cleared, as a new
round of the original recipe starts a fresh optimizer; the learning-rate schedule is not
rewound (the quick presets use a constant rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from devprune.errors import CheckpointError
from devprune.pruning import criteria
from devprune.pruning.base import register_pruner, structural_step
from devprune.pruning.targeted import TargetPruner, TargetSettings


@dataclass
class LTHConfig(TargetSettings):
    """``prune.lth``: iterative magnitude pruning with rewinding (``target``, ``include``,
    ``exclude``, ``include_output``, ``mode``: see :class:`TargetSettings`).

    Attributes:
        rounds: k, the number of prune-and-rewind rounds.
        round_epochs: epochs trained in each round before it prunes.
        rewind_epoch: surviving weights return to their values at the start of this epoch
            (0: the initial weights; must lie within the first round).
        scope: ``global`` or ``layer`` threshold (a per-layer target implies ``layer``).
        reset_optimizer: clear the optimizer state at each rewind.
    """

    method: ClassVar[str] = "lth"

    rounds: int = 3
    round_epochs: int = 1
    rewind_epoch: int = 0
    scope: Literal["global", "layer"] = "global"
    reset_optimizer: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require(self.rounds >= 1 and self.round_epochs >= 1, "rounds / round_epochs",
                     "must be >= 1")
        self.require(0 <= self.rewind_epoch < self.round_epochs, "rewind_epoch",
                     f"{self.rewind_epoch} must lie in the first round, "
                     f"[0, round_epochs={self.round_epochs})")

    @property
    def epochs_needed(self) -> int:
        """Epochs until the last round has pruned (the ticket trains after that)."""
        return self.rounds * self.round_epochs


def round_keep_fraction(round_index: int, rounds: int, target: float) -> float:
    """Kept fraction after round ``round_index`` (1-based): ``target^(round/rounds)``."""
    return float(target) ** (round_index / rounds)


class LTHPruner(TargetPruner):
    """Prunes and rewinds at the end of every round; trains the ticket afterwards."""

    name = "lth"
    config_class = LTHConfig
    cfg: LTHConfig

    def __init__(self, model: nn.Module, example_input: Any = None,
                 config: LTHConfig | None = None) -> None:
        super().__init__(model, example_input, config)
        self.epoch = 0  # the epoch now training
        self.rewind_state: dict[str, torch.Tensor] | None = None

    def on_batch_start(self) -> None:
        if self.rewind_state is None and self.epoch == self.cfg.rewind_epoch:
            self.rewind_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    @structural_step
    @torch.no_grad()
    def on_epoch_end(self, epoch: int) -> dict[str, Any]:
        self.epoch = epoch + 1
        done, rest = divmod(epoch + 1, self.cfg.round_epochs)
        if rest or not 1 <= done <= self.cfg.rounds:
            return {"connectivity": self.masks.weight_connectivity(),
                    "mask_connectivity": self.masks.connectivity()}
        keep = self._prune_round(done)
        self._rewind()
        return {"round": done, "keep_target": keep, "rewound_to_epoch": self.cfg.rewind_epoch,
                "connectivity": self.masks.weight_connectivity(),
                "mask_connectivity": self.masks.connectivity()}

    def _prune_round(self, round_index: int) -> float:
        fractions = {n: round_keep_fraction(round_index, self.cfg.rounds, f)
                     for n, f in self.fractions.items()}
        scores = {la.name: criteria.magnitude_scores(la.weight) for la in self.layers}
        alive = {la.name: self.masks[la.name] for la in self.layers}
        if self.per_layer:
            keep = criteria.layerwise_keep(scores, alive, fractions)
        else:
            keep = criteria.global_keep(scores, alive, next(iter(fractions.values())))
        for name, kept in keep.items():
            self.masks.prune_synapses(name, ~kept)
        return next(iter(fractions.values()))

    def _rewind(self) -> None:
        if self.rewind_state is None:
            raise CheckpointError("lth: no rewind point was recorded; the pruner must see the "
                                  "training batches of epoch rewind_epoch (call on_batch_start)")
        self.model.load_state_dict(self.rewind_state)
        if self.cfg.reset_optimizer and self.optimizer is not None:
            self.optimizer.state.clear()
        self.commit_masks()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(epoch=self.epoch, rewind_state=None if self.rewind_state is None else
                     {k: v.cpu().clone() for k, v in self.rewind_state.items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.epoch = int(state["epoch"])
        saved = state["rewind_state"]
        device = next(iter(self.model.parameters())).device
        self.rewind_state = None if saved is None else {k: v.to(device) for k, v in saved.items()}


register_pruner("lth", LTHPruner, LTHConfig,
                "baseline: lottery ticket, iterative magnitude pruning with weight rewinding")
