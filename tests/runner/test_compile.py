"""``train.compile``: a torch.compile'd forward trains and prunes like the eager one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devprune.runner.config import load_config
from devprune.runner.metrics import read_metrics
from devprune.runner.train import train

# inductor compiles C++ kernels on the CPU
pytestmark = pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                                reason="torch.compile's CPU backend needs a C++ compiler")

DPAP = ["prune.method=dpap", "prune.dpap.every_batches=2", "prune.dpap.start=0",
        "prune.dpap.e0=0", "prune.dpap.fc_neuron_reserve=0.5", "prune.dpap.fc_synapse_reserve=0.5",
        "prune.dpap.temporal=true", "model.time_steps=3", "train.epochs=2"]


def test_compiled_forward_trains_and_prunes_like_eager(tmp_path: Path, tiny_yaml: Path) -> None:
    runs = {}
    for name, compiled in (("eager", "false"), ("compiled", "true")):
        cfg = load_config(str(tiny_yaml), [*DPAP, f"train.compile={compiled}"])
        train(cfg, tmp_path / name, quiet=True, log=lambda _: None)
        runs[name] = read_metrics(tmp_path / name / "metrics.jsonl")
    eager, compiled = runs["eager"][-1], runs["compiled"][-1]
    assert eager["connectivity"] < 1.0  # the pruner saw the compiled model's activity too
    assert compiled["connectivity"] == pytest.approx(eager["connectivity"], abs=0.05)
    assert compiled["test_accuracy"] == pytest.approx(eager["test_accuracy"], abs=0.05)
    assert compiled["pruning"]["time"]["time_steps"] == eager["pruning"]["time"]["time_steps"]
