"""Multi-process (PyTorch DDP) support: the process group, and pruners that agree.

``torchrun --nproc_per_node=N -m devprune train ...`` starts N processes with ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK`` in their environment; :func:`process_group` turns that into an
initialised default process group (gloo on CPU, NCCL on CUDA) for the runner, and
docs/DISTRIBUTED.md describes the whole data-parallel run.

Every rank trains on its own shard, so each rank's pruner accumulates statistics from
different samples. Before each structural step the statistics are summed over ranks, so every
rank takes the same pruning decision from the same global evidence.

Pruners expose their accumulators through :meth:`Pruner.statistics` as tensors that are
*sums over samples* (e.g. DPAP's BCM matrix and activity totals; a running mean is exposed as
its sum and count). Those tensors are cumulative, so a plain all-reduce at every step would
count the earlier epochs ``world_size`` times: :class:`StatisticsSync` reduces only what was
added since the previous synchronisation. After the step, :func:`broadcast_masks` copies rank
0's masks to every rank as a guard against floating-point tie differences.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from devprune.errors import ConfigError
from devprune.pruning.base import Pruner, Synchroniser


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on the process that writes files and logs (rank 0, or the only process)."""
    return rank() == 0


# ------------------------------------------------------------------------------------------
# Launch: torchrun's environment -> process group
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchEnv:
    """What ``torchrun`` (or any launcher following its convention) tells a process."""

    world_size: int
    rank: int
    local_rank: int


def launch_env(environ: dict[str, str] | None = None) -> LaunchEnv | None:
    """The launcher's ``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK``; None for a plain process.

    A world of one process (``torchrun --nproc_per_node=1``) is a plain process too: the run
    is then exactly the single-process run, without a process group.
    """
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return None
    try:
        world = int(env["WORLD_SIZE"])
        rank_ = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank_)))
    except ValueError as err:
        raise ConfigError(f"distributed launch: WORLD_SIZE / RANK / LOCAL_RANK must be "
                          f"integers ({err}); start the run with torchrun") from err
    if world <= 1:
        return None
    if not 0 <= rank_ < world:
        raise ConfigError(f"distributed launch: RANK={rank_} is not in [0, WORLD_SIZE={world})")
    return LaunchEnv(world, rank_, local)


def local_device(device: torch.device, local_rank: int) -> torch.device:
    """A CUDA device without an index becomes this process's own GPU ``cuda:LOCAL_RANK``."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank)
    return device


def process_device(device: torch.device) -> torch.device:
    """``device`` made this process's own (``cuda`` -> ``cuda:LOCAL_RANK`` in a group)."""
    if not is_distributed():
        return device
    return local_device(device, int(os.environ.get("LOCAL_RANK", "0")))


@contextmanager
def process_group(device: torch.device | Callable[[], torch.device]) -> Iterator[None]:
    """Initialise the default process group when launched by torchrun; destroy it on exit.

    ``device`` (or a function giving it, called only when a group is made) picks the
    backend: NCCL with this process's GPU ``cuda:LOCAL_RANK`` for CUDA, gloo for CPU.
    Without a launcher environment, or when the caller already initialised a group (which
    it then keeps), nothing is initialised or destroyed.
    """
    env = launch_env()
    if env is None or is_distributed():
        yield
        return
    if not dist.is_available():
        raise ConfigError("distributed launch: this torch build has no torch.distributed; "
                          "run a single process (without torchrun)")
    chosen = local_device(device() if callable(device) else device, env.local_rank)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
        dist.init_process_group("nccl", device_id=chosen)
    else:
        dist.init_process_group("gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if is_distributed():
        dist.barrier()


def all_reduce_sums(values: Sequence[float]) -> list[float]:
    """Sum plain numbers over ranks in float64 (exact for counts below 2**53)."""
    if not is_distributed():
        return [float(v) for v in values]
    backend = dist.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else "cpu"
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().tolist()


# ------------------------------------------------------------------------------------------
# Pruners that agree
# ------------------------------------------------------------------------------------------


class StatisticsSync(Synchroniser):
    """Sum a pruner's cumulative statistics over ranks, counting every sample once.

    The :class:`devprune.pruning.base.Synchroniser` the runner installs as
    ``pruner.synchroniser``; calling the object sums every statistic. For each named tensor
    it keeps the value of the last synchronisation (identical on every rank) and all-reduces
    only the growth since then, in one collective per dtype. A statistic whose tensor was
    replaced (a method restarting an accumulator, or a shape change such as DPAP's time side
    dropping a step) counts from zero again. After a checkpoint is loaded the values are
    already global: :meth:`rebase` takes them as the new reference.
    """

    def __init__(self, pruner: Pruner) -> None:
        self.pruner = pruner
        self._synced: dict[str, torch.Tensor] = {}
        self._source: dict[str, torch.Tensor] = {}  # the tensor object each base belongs to

    def __call__(self, names: Collection[str] | None = None) -> None:
        self.sum_statistics(names)

    @torch.no_grad()
    def sum_statistics(self, names: Collection[str] | None = None) -> None:
        if not is_distributed():
            return
        stats = self.pruner.statistics()
        if names is not None:
            stats = {k: stats[k] for k in names}
        groups: dict[tuple[torch.dtype, torch.device], list[tuple[str, torch.Tensor]]] = {}
        for name, tensor in sorted(stats.items()):  # same order on every rank
            groups.setdefault((tensor.dtype, tensor.device), []).append((name, tensor))
        for members in groups.values():
            bases = [self._base(name, tensor) for name, tensor in members]
            flat = torch.cat([(tensor - base).reshape(-1)
                              for (_, tensor), base in zip(members, bases, strict=True)])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            offset = 0
            for (name, tensor), base in zip(members, bases, strict=True):
                delta = flat[offset:offset + tensor.numel()].view_as(tensor)
                offset += tensor.numel()
                tensor.copy_(base + delta)
                self._remember(name, tensor)

    def _base(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        base = self._synced.get(name)
        if base is None or self._source.get(name) is not tensor or base.shape != tensor.shape:
            return torch.zeros_like(tensor)
        return base

    def _remember(self, name: str, tensor: torch.Tensor) -> None:
        self._synced[name] = tensor.detach().clone()
        self._source[name] = tensor

    def rebase(self) -> None:
        """Take the current statistics as already summed over ranks (after a resume)."""
        for name, tensor in self.pruner.statistics().items():
            self._remember(name, tensor)

    def agree_on_masks(self) -> None:
        changed = broadcast_masks(self.pruner)
        if changed:
            warnings.warn(f"rank {rank()}: {changed} mask entries differed from rank 0's after "
                          "a structural step; rank 0's masks were taken", RuntimeWarning,
                          stacklevel=2)


@torch.no_grad()
def broadcast_masks(pruner: Pruner, src: int = 0) -> int:
    """Make every rank hold rank ``src``'s masks; returns how many entries changed here.

    Masks are identical after a synchronised step, so this normally changes nothing; when it
    does, the new masks are committed (weights, and in hard mode optimizer state, zeroed).
    """
    if not is_distributed() or pruner.masks is None:
        return 0
    names = pruner.masks.names()
    if not names:
        return 0
    masks = [pruner.masks[name] for name in names]
    flat = torch.cat([m.reshape(-1) for m in masks]).to(torch.uint8)
    if dist.get_backend() == "nccl" and flat.device.type != "cuda":
        flat = flat.cuda()
    dist.broadcast(flat, src=src)
    changed = 0
    offset = 0
    for mask in masks:
        chunk = flat[offset:offset + mask.numel()].view(mask.shape).to(mask.device, torch.bool)
        offset += mask.numel()
        changed += int(torch.count_nonzero(chunk != mask))
        mask.copy_(chunk)
    if changed:
        pruner.masks.invalidate()
        commit = getattr(pruner, "commit_masks", None)
        if commit is not None:
            commit()
        else:
            pruner.masks.apply()
    return changed
