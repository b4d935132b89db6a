"""Data-parallel runs on CPU with gloo: two processes reproduce the one-process run.

The two-process runs are real launches: ``python -m torch.distributed.run --standalone
--nproc_per_node=2 -m devprune train ...`` (what a user types as ``torchrun``) and, for
resume, ``torch.multiprocessing.spawn`` with torchrun's environment variables. With the same
global batch, every rank trains on its half of each batch, DDP averages the gradients and the
pruner's statistics are summed over the ranks before each structural step, so the run is the
one-process run up to the order of floating-point additions: masks, connectivity, units alive
and accuracies are equal, weights agree to ~1e-7.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from devprune.errors import ConfigError
from devprune.runner import checkpoint as ckpt
from devprune.runner.config import config_from_dict
from devprune.runner.data import build_run_data, per_rank_batch_size
from devprune.runner.metrics import read_metrics
from devprune.runner.train import train
from tests.runner.tiny import TINY

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with gloo is not built")

# 240 training samples (300 minus the 20% validation split): 5 global batches of 50 per epoch,
# 4 full and one of 40, so every rank runs 4 x 25 + 1 x 20 samples.
# The runner tests' tiny synthetic run, one thread per process.
BASE: dict[str, Any] = {**TINY, "description": "tiny synthetic data-parallel run",
                        "train": {**TINY["train"], "threads": 1}, "run": {"name": "ddp"}}
METHODS: dict[str, dict[str, Any]] = {
    # a DPAP step every 2 batches (7 steps in 3 epochs), units and synapses dying throughout
    "dpap": {"method": "dpap", "dpap": {"every_batches": 2, "start": 0, "e0": 0,
                                        "fc_neuron_reserve": 2.0, "fc_synapse_reserve": 2.0}},
    # SD-SNN time-scaled to C = 1: ranges, clipping, then regrowth + pruning from epoch 3
    "sdsnn": {"method": "sdsnn", "sdsnn": {"count_threshold": 1}, "_epochs": 4},
}
WEIGHT_ATOL = 1e-6  # observed: <= 3e-7 (DPAP ~3e-8); float sums in another order
TIMEOUT_S = 180


def _raw(method: str) -> dict[str, Any]:
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    prune = dict(METHODS[method])
    raw["train"]["epochs"] = prune.pop("_epochs", raw["train"]["epochs"])
    raw["prune"] = prune
    return raw


def _write_config(tmp: Path, method: str, **data: Any) -> Path:
    raw = _raw(method)
    raw["data"].update(data)
    path = tmp / f"{method}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _one_process(method: str, out: Path, **kwargs: Any) -> dict[str, Any]:
    return train(config_from_dict(_raw(method)), out, quiet=True, log=lambda _: None, **kwargs)


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "devprune", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)


@pytest.fixture(scope="module")
def one_process_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The reference: each method's run in this process, computed once for the module."""
    root = tmp_path_factory.mktemp("one-process")
    for method in METHODS:
        _one_process(method, root / method)
    return {method: root / method for method in METHODS}


# ------------------------------------------------------------------------------------------
# Comparison helpers
# ------------------------------------------------------------------------------------------


def _structure(record: dict[str, Any]) -> dict[str, Any]:
    return {"connectivity": record["connectivity"], "params_nonzero": record["params_nonzero"],
            "units": {n: v["units_alive"] for n, v in record["layers"].items()}}


def _assert_same_run(one: Path, two: Path) -> float:
    """Equal per-epoch structure, accuracies and masks; weights close. Returns max |dW|."""
    a, b = read_metrics(one / "metrics.jsonl"), read_metrics(two / "metrics.jsonl")
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert _structure(x) == _structure(y), f"epoch {x['epoch']}"
        for key in ("train_accuracy", "val_accuracy", "test_accuracy"):
            assert x[key] == y[key], f"{key} at epoch {x['epoch']}"
        for key in ("train_loss", "val_loss", "test_loss"):
            assert x[key] == pytest.approx(y[key], rel=1e-5), f"{key} at epoch {x['epoch']}"
    pa, pb = ckpt.load_checkpoint(one / "last.pt"), ckpt.load_checkpoint(two / "last.pt")
    masks_a, masks_b = ckpt.checkpoint_masks(pa), ckpt.checkpoint_masks(pb)
    for name, mask in masks_a["masks"].items():
        assert torch.equal(mask, masks_b["masks"][name]), name
    worst = 0.0
    for name, weight in pa["model"].items():
        torch.testing.assert_close(pb["model"][name], weight, atol=WEIGHT_ATOL, rtol=0)
        worst = max(worst, float((pb["model"][name] - weight).abs().max()))
    return worst


def _pruned_something(run: Path) -> bool:
    return read_metrics(run / "metrics.jsonl")[-1]["connectivity"] < 1.0


# ------------------------------------------------------------------------------------------
# torchrun -m devprune train
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", list(METHODS))
def test_two_processes_reproduce_the_one_process_run(
    tmp_path: Path, one_process_runs: dict[str, Path], method: str
) -> None:
    out = tmp_path / "two"
    result = _torchrun("train", str(_write_config(tmp_path, method)), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    one = one_process_runs[method]
    assert _pruned_something(one), "the reference run must prune for the comparison to count"
    worst = _assert_same_run(one, out)
    print(f"{method}: max |weight difference| 1 vs 2 processes = {worst:.2e}")
    # rank 0 alone logs and writes: one banner, one line per epoch, the same files
    assert result.stdout.count("devprune train:") == 1
    assert "x 2 processes (batch 50 = 2 x 25)" in result.stdout
    assert result.stdout.count("epoch   1/") == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in one.iterdir())
    summary = yaml.safe_load((out / "summary.json").read_text())
    assert summary["processes"] == 2 and "processes" not in yaml.safe_load(
        (one / "summary.json").read_text())
    if method == "dpap":  # the N-batch steps ran inside the epochs, synchronised each time
        steps = [r["pruning"]["steps"] for r in read_metrics(out / "metrics.jsonl")]
        assert steps == [[0, 1], [2, 3, 4], [5, 6]]


def test_a_batch_size_the_processes_cannot_share_is_a_clear_error(tmp_path: Path) -> None:
    config = _write_config(tmp_path, "dpap", batch_size=25)
    result = _torchrun("train", str(config), "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode != 0
    assert ("devprune: error: data.batch_size=25 is the global batch, shared by 2 processes, "
            "so it must be divisible by 2") in result.stderr
    assert "Traceback" not in result.stderr.split("devprune: error:")[0][-2000:]


def test_per_rank_batch_size() -> None:
    assert per_rank_batch_size(50, 1) == 50
    assert per_rank_batch_size(50, 2) == 25
    with pytest.raises(ConfigError, match=r"data.batch_size=50 .* divisible by 4.*"
                       r"--set data.batch_size=52"):
        per_rank_batch_size(50, 4)
    cfg = config_from_dict(_raw("dpap")).data
    with pytest.raises(ConfigError, match="shared by 3 processes"):
        build_run_data(cfg, torch.device("cpu"), 50, rank=0, world_size=3)


def test_ranks_split_every_global_batch_and_the_evaluation_sets() -> None:
    cfg = config_from_dict(_raw("dpap")).data
    one = build_run_data(cfg, torch.device("cpu"), 50)
    ranks = [build_run_data(cfg, torch.device("cpu"), 50, rank=r, world_size=2) for r in (0, 1)]
    for epoch in (0, 1):
        whole = one.train.indices(epoch)
        halves = [data.train.indices(epoch) for data in ranks]
        for step in range(len(one.train)):
            batch = whole[step * 50:(step + 1) * 50]
            shares = [h[step * 25:(step + 1) * 25] for h in halves]
            assert sorted(torch.cat(shares).tolist()) == sorted(batch.tolist())
    for split in ("val", "test"):
        seen = torch.cat([getattr(d, split).indices(0) for d in ranks])
        assert sorted(seen.tolist()) == list(range(len(getattr(one, split).dataset)))
    assert len(ranks[0].measure.indices(0)) == len(one.measure.indices(0))  # rank 0 measures


# ------------------------------------------------------------------------------------------
# Resume: every rank loads last.pt; the world size may even change
# ------------------------------------------------------------------------------------------


def _free_ports(count: int) -> tuple[int, ...]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:  # held open together, so the ports differ
            sock.bind(("127.0.0.1", 0))
        return tuple(sock.getsockname()[1] for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


def _resume_worker(rank: int, ports: tuple[int, int], root: str) -> None:
    """One rank of a run stopped after epoch 1 and resumed, as two launches would run it."""
    torch.set_num_threads(1)
    split = Path(root) / "split"
    for port, kwargs in zip(ports, ({"stop_after": 1}, {"resume": True}), strict=True):
        # torchrun's environment: train() initialises and destroys the group itself
        os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank),
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        _one_process("dpap", split, **kwargs)
        if "stop_after" in kwargs and rank == 0:  # train() returns once rank 0 has written
            assert len(read_metrics(split / "metrics.jsonl")) == 1
            assert not (split / "summary.json").exists()
            shutil.copytree(split, Path(root) / "to-one")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        del os.environ[key]


def test_resume_in_two_processes_and_in_one(
    tmp_path: Path, one_process_runs: dict[str, Path]
) -> None:
    ports = _free_ports(2)
    mp.spawn(_resume_worker, args=(ports, str(tmp_path)), nprocs=2, join=True)
    _one_process("dpap", tmp_path / "to-one", resume=True)  # the saved statistics are global
    one = one_process_runs["dpap"]
    _assert_same_run(one, tmp_path / "split")  # both ranks loaded last.pt
    _assert_same_run(one, tmp_path / "to-one")
