"""Baselines through the runner: a run killed after its first epoch resumes to the same
result (pruner state, masks, rewind point and clocks travel in the checkpoint)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from devprune.runner import checkpoint as ckpt
from devprune.runner.config import load_config
from devprune.runner.metrics import read_metrics
from devprune.runner.train import train

SETTINGS = {
    "magnitude": ["prune.magnitude.target=0.3", "prune.magnitude.every_batches=2",
                  "prune.magnitude.start=1", "prune.magnitude.end=4"],
    "random": ["prune.random.target=0.3", "prune.random.start=0", "prune.random.end=1"],
    "lth": ["prune.lth.target=0.3", "prune.lth.rounds=2", "prune.lth.round_epochs=1"],
    "rigl": ["prune.rigl.target=0.3", "prune.rigl.every_batches=2", "prune.rigl.end=5"],
    "set": ["prune.set.target=0.3", "prune.set.every_batches=2", "prune.set.end=5"],
}


def _strip(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("epoch_time_s", "wall_time_s")}
            for r in records]


@pytest.mark.parametrize("method", sorted(SETTINGS))
def test_baseline_run_resumes_to_the_same_result(tmp_path: Path, tiny_yaml: Path,
                                                 method: str) -> None:
    cfg = load_config(str(tiny_yaml), [f"prune.method={method}", *SETTINGS[method]])
    quiet = {"quiet": True, "log": lambda _: None}
    train(cfg, tmp_path / "straight", **quiet)
    train(cfg, tmp_path / "split", stop_after=1, **quiet)
    train(cfg, tmp_path / "split", resume=True, **quiet)
    straight = read_metrics(tmp_path / "straight" / "metrics.jsonl")
    assert _strip(read_metrics(tmp_path / "split" / "metrics.jsonl")) == _strip(straight)
    assert straight[-1]["connectivity"] == pytest.approx(0.3, abs=0.02)
    a = ckpt.load_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    b = ckpt.load_checkpoint(tmp_path / "split" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
