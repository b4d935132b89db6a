"""Multi-process (PyTorch DDP) support for pruners.

Under ``torchrun`` every rank trains on its own shard, so each rank's pruner accumulates
statistics from different samples. Before each structural step the statistics are summed
over ranks, so every rank takes the same pruning decision from the same global evidence.

Pruners expose their accumulators through :meth:`Pruner.statistics` as tensors that are
*sums over samples* (e.g. DPAP's BCM matrix and activity totals; a running mean is exposed as
its sum and count). Those tensors are cumulative, so a plain all-reduce at every step would
count the earlier epochs ``world_size`` times: :class:`StatisticsSync` reduces only what was
added since the previous synchronisation. After the step, :func:`broadcast_masks` copies rank
0's masks to every rank as a guard against floating-point tie differences.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from devprune.pruning.base import Pruner


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


class StatisticsSync:
    """Sum a pruner's cumulative statistics over ranks, counting every sample once."""

    def __init__(self, pruner: Pruner) -> None:
        self.pruner = pruner
        self._synced: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self) -> None:
        if not is_distributed():
            return
        for name, tensor in self.pruner.statistics().items():
            base = self._synced.get(name)
            if base is None or base.shape != tensor.shape:
                base = torch.zeros_like(tensor)
            delta = tensor - base
            dist.all_reduce(delta, op=dist.ReduceOp.SUM)
            tensor.copy_(base + delta)
            self._synced[name] = tensor.detach().clone()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.cpu() for k, v in self._synced.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self._synced = {k: v.clone() for k, v in state.items()}


@torch.no_grad()
def broadcast_masks(pruner: Pruner, src: int = 0) -> None:
    """Make every rank hold rank ``src``'s masks (and re-apply them to the weights)."""
    if not is_distributed() or pruner.masks is None:
        return
    for name in pruner.masks.names():
        mask = pruner.masks[name]
        as_bytes = mask.to(torch.uint8)
        dist.broadcast(as_bytes, src=src)
        mask.copy_(as_bytes.bool())
    pruner.masks.invalidate()
    pruner.masks.apply()
