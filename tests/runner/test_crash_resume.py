"""A training run killed with SIGKILL at several points resumes with ``--resume`` to the
uninterrupted run's final weights, masks, pruner state and metrics, bit for bit on the CPU,
for DPAP and SD-SNN (issue 19). The killed runs are real processes, started together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from devprune.cli import main
from devprune.runner.checkpoint import checkpoint_masks, load_checkpoint
from devprune.runner.metrics import read_metrics
from tests.runner.tiny import TINY

METHODS = {
    "dpap": ["prune.method=dpap", "prune.dpap.every_batches=2", "prune.dpap.start=0",
             "prune.dpap.e0=0", "prune.dpap.fc_neuron_reserve=1.0",
             "prune.dpap.fc_synapse_reserve=1.0"],
    "sdsnn": ["prune.method=sdsnn", "prune.sdsnn.every_batches=1",
              "prune.sdsnn.count_threshold=1"],
}
COMMON = ["train.epochs=3", "train.threads=1", "run.keep=1"]

# Where each process dies (epoch 2 of 3, after epoch 1's checkpoint): KILL_AT selects it.
KILLER = """
import os, signal, sys
import importlib
T = importlib.import_module("devprune.runner.train")
import devprune.utils.io as io
from devprune.cli import main

where = os.environ["KILL_AT"]
die = lambda: os.kill(os.getpid(), signal.SIGKILL)

if where == "mid-epoch":  # in the third training batch of epoch 2
    train_epoch = T.train_epoch
    def killing_epoch(model, loader, *args, epoch, **kwargs):
        def batches():
            for index, batch in enumerate(loader):
                if epoch == 1 and index == 2:
                    die()
                yield batch
        return train_epoch(model, batches(), *args, epoch=epoch, **kwargs)
    T.train_epoch = killing_epoch
elif where == "after-epoch-end":  # epoch 2 finished: metrics, best.pt, last.pt written
    one_epoch = T._one_epoch
    def killing_one_epoch(s, **kwargs):
        one_epoch(s, **kwargs)
        if s.epochs_done == 2:
            die()
    T._one_epoch = killing_one_epoch
elif where == "checkpoint-write":  # halfway through writing epoch 2's last.pt
    save = io.atomic_torch_save
    count = {"last": 0}
    def killing_save(obj, path):
        if str(path).endswith("last.pt"):
            count["last"] += 1
            if count["last"] == 2:
                with io.atomic_writer(path, "wb") as handle:
                    handle.write(b"PK half a checkpoint")
                    handle.flush()
                    die()
        save(obj, path)
    io.atomic_torch_save = killing_save
    importlib.import_module("devprune.runner.checkpoint").atomic_torch_save = killing_save
sys.exit(main(sys.argv[1:]))
"""
KILL_POINTS = ("mid-epoch", "after-epoch-end", "checkpoint-write")
TIMING = {"epoch_time_s", "wall_time_s"}


def _state(run: Path) -> dict[str, Any]:
    """Everything the run ends with, without wall-clock times."""
    last = load_checkpoint(run / "last.pt")
    summary = json.loads((run / "summary.json").read_text())
    return {
        "model": last["model"], "masks": checkpoint_masks(last), "pruner": last["pruner"],
        "optimizer": last["optimizer"], "epochs_done": last["epochs_done"],
        "best": last["best"],
        "metrics": [{k: v for k, v in r.items() if k not in TIMING}
                    for r in read_metrics(run / "metrics.jsonl")],
        "summary": {k: v for k, v in summary.items()
                    if k not in ("wall_time_s", "git", "versions")},
    }


def _assert_identical(got: Any, want: Any, where: str = "") -> None:
    if isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor) and got.dtype == want.dtype, where
        assert torch.equal(got, want), where  # bit for bit (NaN-free states)
    elif isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), (where, set(got) ^ set(want))
        for key in want:
            _assert_identical(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), where
        for index, (a, b) in enumerate(zip(got, want, strict=True)):
            _assert_identical(a, b, f"{where}[{index}]")
    else:
        assert got == want, (where, got, want)


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """Every (method, kill point) run, killed in its own process (all started together)."""
    base = tmp_path_factory.mktemp("crash")
    config = base / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    running = {}
    for method, sets in METHODS.items():
        for point in KILL_POINTS:
            out = base / f"{method}-{point}"
            running[(method, point)] = (out, subprocess.Popen(
                [sys.executable, "-c", KILLER, "train", str(config), "--quiet", "--set",
                 *COMMON, *sets, "--out", str(out)],
                env={**env, "KILL_AT": point}, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True))
    runs = {}
    for key, (out, process) in running.items():
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == -9, (key, stderr[-2000:])
        runs[key] = out
    runs[("config", "")] = config
    return runs


@pytest.mark.parametrize("method", sorted(METHODS))
def test_sigkilled_runs_resume_to_the_uninterrupted_run_bit_for_bit(
    tmp_path: Path, killed: dict[tuple[str, str], Path], method: str
) -> None:
    config = killed[("config", "")]
    straight = tmp_path / "straight"
    assert main(["train", str(config), "--quiet", "--set", *COMMON, *METHODS[method],
                 "--out", str(straight)]) == 0
    want = _state(straight)
    assert want["masks"] is not None and want["summary"]["connectivity"] < 1.0  # it pruned
    for point in KILL_POINTS:
        run = killed[(method, point)]
        done = load_checkpoint(run / "last.pt")["epochs_done"]
        assert done == (2 if point == "after-epoch-end" else 1), point
        assert not (run / "summary.json").exists()
        if point == "checkpoint-write":
            assert list(run.glob(".last.pt.*.tmp"))  # the half-written file is left over
        assert main(["train", "--resume", "--out", str(run), "--quiet"]) == 0, point
        assert not list(run.glob(".*.tmp")), point
        _assert_identical(_state(run), want, f"{method}/{point}")
