"""Checkpoints written by an earlier devprune still load and give the same numbers.

``tests/fixtures/run_v1`` is a tiny DPAP run (with its time side: masks, pruner statistics,
a learnt T) stopped after epoch 2 of 3, committed as devprune wrote it
(``tests/fixtures/make_run_v1.py``). The expected numbers below are what that version
printed; compacting it must keep the outputs. A failure means old run directories no longer
evaluate, resume or compact as they did: fix the loader, do not regenerate the fixture.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from devprune.cli import main
from devprune.compact import load_compacted
from devprune.runner.config import load_config
from devprune.runner.evaluate import evaluate_run
from devprune.runner.metrics import read_metrics
from devprune.runner.runmodel import load_run
from devprune.runner.train import train

FIXTURE = Path(__file__).parent.parent / "fixtures" / "run_v1"

EVAL_LAST = {"epochs_done": 2, "test_accuracy": 0.18, "test_loss": 0.09875000268220901,
             "connectivity": 0.6154336734693877, "params_nonzero": 3925, "params_total": 6370}
WORKLOAD = {"FiringRate": 0.11611111111111111, "ActivationSparsity": 0.883888888888889,
            "SynapticOperations": {"Effective_MACs": 7720.0, "Effective_ACs": 39.0,
                                   "Dense": 12704.0},
            "Energy_pJ": 35547.1}
RESUMED_FINAL = {"test_accuracy": 0.18, "test_loss": 0.09525000303983688,
                 "connectivity": 0.46651785714285715}


@pytest.fixture
def old_run(tmp_path: Path) -> Path:
    """A copy of the fixture run (eval and resume write into the run directory)."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "run_v1"))


def _close(actual: dict, expected: dict) -> None:
    for key, value in expected.items():
        if isinstance(value, dict):
            _close(actual[key], value)
        else:
            assert actual[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


def test_fixture_is_small() -> None:
    assert sum(p.stat().st_size for p in FIXTURE.iterdir()) < 200_000


def test_old_checkpoint_evaluates_to_the_same_numbers(old_run: Path) -> None:
    result = evaluate_run(old_run, "last")
    _close(result, EVAL_LAST)
    _close(result["workload"], WORKLOAD)
    assert result["workload"]["connections"]["features.layer1.fc"]["steps_per_sample"] == 2.0


def test_old_checkpoint_resumes_to_the_same_numbers(old_run: Path) -> None:
    before = read_metrics(old_run / "metrics.jsonl")
    cfg = load_config(str(old_run / "config.yaml"), [])
    train(cfg, old_run, resume=True, quiet=True, log=lambda _: None)
    records = read_metrics(old_run / "metrics.jsonl")
    assert len(records) == 3 and records[:2] == before
    _close(records[-1], RESUMED_FINAL)


def test_old_checkpoint_compacts_with_its_masks_and_learnt_length(old_run: Path,
                                                                   tmp_path: Path) -> None:
    run = load_run(old_run)
    assert run.build["time_steps"] == 2 and run.model.time_steps == 2  # learnt; config says 4
    assert run.masks.connectivity() == pytest.approx(EVAL_LAST["connectivity"])
    assert main(["compact", str(old_run), "--out", str(tmp_path / "small.pt")]) == 0
    small = load_compacted(tmp_path / "small.pt")
    assert torch.allclose(small(run.example), run.model(run.example))
