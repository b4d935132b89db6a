"""Two CPU processes (gloo): statistics summed over ranks equal the single-process sums."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from devprune.distributed import StatisticsSync, broadcast_masks
from devprune.masks import MaskSet
from devprune.pruning.base import Pruner
from devprune.structure import discover
from tests.core.models import ChainSNN


class CountingPruner(Pruner):
    """Accumulates a per-rank sum, like a real method's activity totals."""

    name = "counting"

    def __init__(self, model):
        super().__init__(model)
        self.total = torch.zeros(3)
        self.masks = MaskSet(discover(model))

    def statistics(self):
        return {"total": self.total}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(rank)  # ranks start from different masks
        pruner = CountingPruner(ChainSNN())
        sync = StatisticsSync(pruner)
        for epoch in range(3):  # each epoch adds rank-specific evidence, then syncs
            pruner.total += torch.tensor([1.0, rank + 1.0, epoch * 10.0 + rank])
            sync()
        if rank == 0:
            pruner.masks.prune_units("f1", torch.tensor([2]))
        broadcast_masks(pruner)
        out[rank] = (pruner.total.clone(), pruner.masks["f1"].clone())
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_sync_counts_every_sample_once_and_masks_agree():
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    # 3 epochs x 2 ranks: [1+1]*3, [1+2]*3, sum over epochs e of (10e + 0) + (10e + 1)
    expected = torch.tensor([6.0, 9.0, 63.0])
    for rank in (0, 1):
        total, f1_mask = out[rank]
        assert torch.equal(total, expected)
        assert not f1_mask[2].any() and f1_mask[1].all()


def test_single_process_sync_is_a_no_op():
    pruner = CountingPruner(ChainSNN())
    pruner.total += 5
    StatisticsSync(pruner)()
    assert torch.equal(pruner.total, torch.full((3,), 5.0))
