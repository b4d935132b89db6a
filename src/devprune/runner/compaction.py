"""In-training compaction (``train.compact_every``, ``train.compact_every_batches``,
docs/COMPACT.md#in-training-compaction).

Every ``compact_every`` epochs (or ``compact_every_batches`` training batches), after the
structural step, the session's model loses its dead units physically
(:mod:`devprune.compact.live`), together with everything shaped like them: the optimizer
state of each sliced parameter, the pruner's masks, statistics and reserves
(:meth:`~devprune.pruning.base.Pruner.shrink`), BatchNorm and per-channel neuron tensors.
Training then continues as on the masked model (same losses up to float rounding). The
forward wrappers (``torch.compile``, DistributedDataParallel) are built again around the
shrunk model.

A checkpoint written after a shrink holds the shrunk weights, optimizer and pruner state,
plus ``compaction``: the kept indices relative to the architecture the config builds, and
that architecture's record. Resuming builds the full session and shrinks it the same way
before loading; commands that read a checkpoint into the full architecture (eval, compact,
export) scatter it back (:func:`devprune.compact.live.expand_checkpoint`). Metrics are
measured on that full-size view, so a shrunk run logs what the masked run logs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from devprune.compact.live import (
    Keep,
    coupling_of,
    expand_mask_state,
    expand_state_dict,
    full_size_map,
    identity_keep,
    index_map,
    live_plan,
    shrink_model_,
    shrink_optimizer_,
)
from devprune.compact.record import architecture_record, rebuild
from devprune.errors import ConfigError
from devprune.masks import MaskSet
from devprune.pruning.base import Pruner

if TYPE_CHECKING:  # typing only: runner.train imports this module
    from devprune.runner.config import Config
    from devprune.runner.train import Session


@dataclass
class Compaction:
    """What a session's shrinks removed so far: ``keep`` is relative to ``architecture``
    (the record of the model the config builds)."""

    architecture: dict[str, Any]
    keep: Keep
    shrinks: int = 0

    def state(self) -> dict[str, Any]:
        return {"architecture": self.architecture, "keep": self.keep.state(),
                "shrinks": self.shrinks}


CADENCES = ("compact_every", "compact_every_batches")  # train.*: epochs, batches


def _cadences(cfg: Config) -> list[str]:
    """The compaction cadences the run uses: those set, when the run prunes (dense training
    has nothing ever to remove: there they are no-ops)."""
    if cfg.prune.method == "none":
        return []
    return [key for key in CADENCES if getattr(cfg.train, key) > 0]


def check_compaction(cfg: Config, pruner: Pruner) -> None:
    """Refuse compaction for a method whose state cannot follow a shrink."""
    used = _cadences(cfg)
    reason = pruner.compaction_refusal() if used else None
    if reason is not None:
        settings = " ".join(f"train.{key}={getattr(cfg.train, key)}" for key in used)
        raise ConfigError(f"{settings}: prune.method={cfg.prune.method} cannot shrink the "
                          f"model while training ({reason}); set "
                          + " and ".join(f"train.{key}=0" for key in used))


def due(cfg: Config, epoch: int) -> bool:
    """Whether the end of ``epoch`` shrinks the model."""
    return "compact_every" in _cadences(cfg) and (epoch + 1) % cfg.train.compact_every == 0


def batch_hook(s: Session, epoch: int, shrinks: list[dict[str, Any]]
               ) -> Callable[[int], Any] | None:
    """The training loop's ``after_batch`` for ``train.compact_every_batches``: after every
    N-th training batch of the run (its structural step done), shrink; what changed goes to
    ``shrinks``, and the loop gets the rebuilt forward (None: keep its own). None when the
    run does not shrink within epochs."""
    if "compact_every_batches" not in _cadences(s.cfg):
        return None
    every, per_epoch = s.cfg.train.compact_every_batches, len(s.data.train)

    def after_batch(index: int) -> Any:
        if (epoch * per_epoch + index + 1) % every:
            return None
        s.pruner.synchronise()  # statistics summed over ranks, as at an epoch end
        shrunk = shrink_session(s)
        if shrunk is None:
            return None
        shrinks.append(shrunk)
        return s.train_forward or s.forward

    return after_batch


def epoch_compaction(shrinks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The epoch record's ``compaction``: what this epoch's shrinks changed, as one."""
    if not shrinks:
        return None
    return {**shrinks[-1], "params_before": shrinks[0]["params_before"]}


def shrink_session(s: Session) -> dict[str, Any] | None:
    """Remove the session's dead units now; returns what changed (None: nothing to remove,
    or the method may still revive or count them: ``Pruner.removal_is_final``)."""
    if not s.pruner.removal_is_final():
        return None
    masks = s.pruner.masks
    plan, coupled = live_plan(s.model, masks, s.pruner.example_input,
                              s.pruner.shrinkable_unread())
    keep = Keep(plan.keep_out, plan.keep_in)
    if not keep.removes_anything(masks.structure):
        return None
    before = sum(p.numel() for p in s.model.parameters())
    _apply(s, keep, coupled)
    after = sum(p.numel() for p in s.model.parameters())
    return {"shrinks": s.compaction.shrinks, "params_before": before, "params_after": after,
            "units": {name: int(k.numel()) for name, k in s.compaction.keep.keep_out.items()}}


def restore_compaction(s: Session, entry: dict[str, Any]) -> None:
    """Shrink a freshly built session as the checkpoint's ``compaction`` entry says (before
    its shrunk weights, optimizer and pruner state are loaded)."""
    keep = Keep.from_state(entry["keep"])
    structure = s.pruner.masks.structure
    _apply(s, keep, coupling_of(s.model, structure))
    s.compaction = Compaction(entry["architecture"], keep, int(entry.get("shrinks", 1)))


def _apply(s: Session, keep: Keep, coupled: dict[str, str]) -> None:
    structure = s.pruner.masks.structure
    previous = s.compaction or Compaction(architecture_record(s.model), identity_keep(structure))
    slices = index_map(s.model, structure, coupled, keep)
    by_key = dict(s.model.named_parameters())
    slices_of = {by_key[k]: ops for k, ops in slices.items() if k in by_key}
    replaced = shrink_model_(s.model, slices)
    shrink_optimizer_(s.optimizer, replaced, slices_of)
    if not s.pruner.shrink(keep):  # checked at build time (check_compaction)
        raise RuntimeError(f"{s.pruner.name} refused to shrink after the model did")
    if s.pruner.synchroniser is not None:
        s.pruner.synchroniser.rebase()  # statistics are global already, their tensors new
    s.compaction = Compaction(previous.architecture, previous.keep.then(keep),
                              previous.shrinks + 1)
    _rewrap(s)


def _rewrap(s: Session) -> None:
    """Build the forward wrappers again around the shrunk model."""
    s.forward = torch.compile(s.model) if s.cfg.train.compile else s.model
    if s.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        device = s.device
        s.train_forward = None  # the old wrapper's hooks go with it
        wrapped = DistributedDataParallel(
            s.model, device_ids=[device.index] if device.type == "cuda" else None)
        s.train_forward = torch.compile(wrapped) if s.cfg.train.compile else wrapped


def full_size_view(s: Session) -> tuple[nn.Module, Any]:
    """(model, pruner-like) to measure: the session's own, or for a shrunk session a copy in
    the original architecture with removed entries zero and masked (what the masked run
    holds), so that metrics do not depend on compaction."""
    if s.compaction is None:
        return s.model, s.pruner
    full = rebuild(s.model, s.compaction.architecture)  # a resized deep copy
    structure, slices = full_size_map(full, s.compaction.keep, s.pruner.example_input)
    full.load_state_dict(expand_state_dict(full, s.model.state_dict(), slices))

    state = expand_mask_state(s.pruner.masks.state_dict(), structure, slices)
    masks = MaskSet(structure, layers=list(state["masks"]), mode=state["mode"])
    masks.load_state_dict(state)
    masks.to(next(full.parameters()).device)
    return full, SimpleNamespace(masks=masks, example_input=s.pruner.example_input)
