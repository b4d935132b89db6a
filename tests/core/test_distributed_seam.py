"""The data-parallel seam: launch environment, Pruner.synchroniser calls, StatisticsSync."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from devprune.data import TensorBatchLoader
from devprune.data.base import InMemoryDataset
from devprune.distributed import LaunchEnv, StatisticsSync, all_reduce_sums, launch_env
from devprune.errors import ConfigError
from devprune.pruning import build_pruner
from devprune.pruning.base import Pruner, Synchroniser, structural_step
from devprune.runner.loop import evaluate
from tests.core.models import ChainSNN


class Recorder:
    """A synchroniser that only records what the pruner asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def sum_statistics(self, names=None) -> None:
        self.calls.append(("sum", None if names is None else sorted(names)))

    def agree_on_masks(self) -> None:
        self.calls.append(("agree", None))


# ------------------------------------------------------------------------------------------
# Launch environment
# ------------------------------------------------------------------------------------------


def test_launch_env_reads_torchruns_variables() -> None:
    assert launch_env({}) is None
    assert launch_env({"WORLD_SIZE": "1", "RANK": "0"}) is None  # one process: plain run
    assert launch_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == LaunchEnv(4, 3, 1)
    assert launch_env({"WORLD_SIZE": "2", "RANK": "1"}) == LaunchEnv(2, 1, 1)
    with pytest.raises(ConfigError, match="RANK=2 is not in"):
        launch_env({"WORLD_SIZE": "2", "RANK": "2"})
    with pytest.raises(ConfigError, match="must be integers"):
        launch_env({"WORLD_SIZE": "two"})


# ------------------------------------------------------------------------------------------
# The seam in one process
# ------------------------------------------------------------------------------------------


class StepPruner(Pruner):
    name = "step"

    def __init__(self) -> None:
        super().__init__(torch.nn.Linear(2, 2))
        self.seen: list[object] = []

    @structural_step
    def step(self, value: int) -> int:
        self.seen.append(("step", value))
        return value + 1


def test_structural_step_sums_before_and_agrees_after() -> None:
    pruner = StepPruner()
    assert pruner.step(1) == 2  # no synchroniser: the plain method
    recorder = Recorder()
    recorder.calls = pruner.seen  # one log of the synchroniser's and the step's calls
    pruner.synchroniser = recorder
    assert pruner.step(5) == 6
    assert pruner.seen == [("step", 1), ("sum", None), ("step", 5), ("agree", None)]
    pruner.synchronise(["b", "a"])
    assert pruner.seen[-1] == ("sum", ["a", "b"])
    Pruner(torch.nn.Linear(2, 2)).synchronise()  # default: no synchroniser, a no-op


def _dpap(**overrides):
    model = ChainSNN()
    x = torch.rand(4, 1, 8, 8)
    cfg = {"every_batches": 2, "start": 0, "e0": 0, "fc_neuron_reserve": 0.5,
           "fc_synapse_reserve": 0.5, "conv_reserve": 0.5, **overrides}
    return model, x, build_pruner("dpap", model, x, cfg)


def _batch(model, pruner, x) -> None:
    pruner.on_batch_start()
    model(x).sum().backward()
    pruner.on_batch_end()


def test_dpap_syncs_theta_every_batch_and_everything_before_each_step() -> None:
    model, x, pruner = _dpap()
    recorder = Recorder()
    pruner.synchroniser = recorder
    theta = sorted(k for k in pruner.statistics() if k.endswith((".theta_sum", ".theta_count")))
    assert theta and set(theta) < set(pruner.statistics())
    _batch(model, pruner, x)
    assert recorder.calls == [("sum", theta)]
    _batch(model, pruner, x)  # second batch: an N-batch structural step
    assert recorder.calls[1:] == [("sum", theta), ("sum", None), ("agree", None)]
    recorder.calls.clear()
    pruner.on_epoch_end(0)  # every_batches > 0: no step at the epoch end
    assert recorder.calls == []


def test_dpap_epoch_steps_and_per_slot_theta() -> None:
    model, x, pruner = _dpap(every_batches=0, theta="per_slot")
    recorder = Recorder()
    pruner.synchroniser = recorder
    _batch(model, pruner, x)
    assert recorder.calls == []  # per-slot thresholds stay per rank (docs/DISTRIBUTED.md)
    pruner.on_epoch_end(0)
    assert recorder.calls == [("sum", None), ("agree", None)]


def test_sdsnn_has_no_per_rank_statistics_but_agrees_on_masks() -> None:
    model = ChainSNN()
    x = torch.rand(4, 1, 8, 8)
    pruner = build_pruner("sdsnn", model, x, {"count_threshold": 1})
    pruner.next_epoch = 3  # accumulating the gradient signal of regrowth
    model(x).sum().backward()
    pruner.on_after_backward()
    assert pruner.grad_sums  # summed DDP-averaged gradients: already global, never reduced
    assert pruner.statistics() == {}
    recorder = Recorder()
    pruner.synchroniser = recorder
    pruner.on_epoch_end(0)
    assert recorder.calls == [("sum", None), ("agree", None)]


def test_single_process_reductions_are_identities() -> None:
    assert all_reduce_sums([1.5, 3, 7]) == [1.5, 3.0, 7.0]
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    data = [(torch.rand(5, 1, 2, 2), torch.randint(0, 3, (5,))) for _ in range(3)]
    loss = torch.nn.functional.cross_entropy
    cpu = torch.device("cpu")
    assert evaluate(model, data, loss, device=cpu, all_reduce=True) == evaluate(
        model, data, loss, device=cpu)


# ------------------------------------------------------------------------------------------
# Evaluation shards
# ------------------------------------------------------------------------------------------


class _Tiny(InMemoryDataset):
    def __init__(self, n: int) -> None:
        self.data = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1)
        self.targets = torch.zeros(n, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.targets)

    def __repr__(self) -> str:
        return f"_Tiny({len(self)})"

    def batch(self, index, generator=None, *, augment=None, device=None):
        return self.data[index].float(), self.targets[index]


@pytest.mark.parametrize("n", [1, 7, 8])
def test_unpadded_shards_cover_every_sample_once(n: int) -> None:
    dataset = _Tiny(n)
    shards = [TensorBatchLoader(dataset, 2, shuffle=False, rank=r, world_size=3, pad=False)
              for r in range(3)]
    seen = [int(v) for loader in shards for x, _ in loader for v in x.flatten()]
    assert sorted(seen) == list(range(n))
    assert [loader.num_samples for loader in shards] == [len(range(r, n, 3)) for r in range(3)]
    padded = TensorBatchLoader(dataset, 2, shuffle=False, rank=2, world_size=3)
    assert padded.num_samples == -(-n // 3)  # training shards keep the wrap-around padding


# ------------------------------------------------------------------------------------------
# StatisticsSync across two gloo processes
# ------------------------------------------------------------------------------------------


class StatsPruner(Pruner):
    name = "stats"

    def __init__(self) -> None:
        super().__init__(torch.nn.Linear(2, 2))
        self.acc = {"a": torch.zeros(3), "count": torch.zeros(()),
                    "loss": torch.zeros(4, dtype=torch.float64)}

    def statistics(self):
        return dict(self.acc)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sync_worker(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        pruner = StatsPruner()
        sync = StatisticsSync(pruner)
        results = []
        r = rank + 1.0
        pruner.acc["a"] += r  # 1 / 2 per rank -> 3
        pruner.acc["count"] += 1
        pruner.acc["loss"] += 10 * r
        sync.sum_statistics(["count"])  # a subset, as DPAP's per-batch theta
        results.append(float(pruner.acc["count"]))  # 2
        pruner.acc["count"] += 1
        sync()  # everything; "count" only adds its growth since the subset sync
        results.append((pruner.acc["a"].tolist(), float(pruner.acc["count"]),
                        pruner.acc["loss"].tolist()))
        # a restarted accumulator: a new tensor (DPAP time side's window after a T drop)
        pruner.acc["count"] = torch.full((), 5.0 * r)
        pruner.acc["loss"] = torch.zeros(3, dtype=torch.float64) + r  # and a new shape
        sync()
        results.append((float(pruner.acc["count"]), pruner.acc["loss"].tolist()))
        # after a checkpoint load every rank holds the same, already global, values
        pruner.acc["a"] = torch.full((3,), 100.0)
        sync.rebase()
        pruner.acc["a"] += r
        sync()
        results.append(pruner.acc["a"].tolist())
        out[rank] = results
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_statistics_sync_counts_each_sample_once_across_subsets_restarts_and_resume():
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_sync_worker, args=(_free_port(), out), nprocs=2, join=True)
    expected = [
        2.0,
        ([3.0, 3.0, 3.0], 4.0, [30.0] * 4),
        (15.0, [3.0, 3.0, 3.0]),  # counted from zero: 5 + 10, 1 + 2
        [103.0, 103.0, 103.0],
    ]
    assert out[0] == expected and out[1] == expected


def test_statistics_sync_implements_every_call_of_the_synchroniser_protocol() -> None:
    declared = [name for name in vars(Synchroniser) if not name.startswith("_")]
    assert set(declared) >= {"sum_statistics", "agree_on_masks", "rebase"}
    for name in declared:
        assert getattr(StatisticsSync, name) is not getattr(Synchroniser, name), name
