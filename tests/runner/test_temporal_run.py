"""DPAP's time side through the runner: the epoch line, resume and eval keep the learnt T."""

from __future__ import annotations

from pathlib import Path

from devprune.runner.config import load_config
from devprune.runner.evaluate import evaluate_run
from devprune.runner.metrics import read_metrics
from devprune.runner.train import train


def test_runner_logs_resumes_and_evaluates_the_learnt_length(tmp_path: Path, tiny_yaml: Path):
    overrides = ["prune.method=dpap", "model.time_steps=4", "prune.dpap.temporal=true",
                 "prune.dpap.every_batches=2", "prune.dpap.start=0", "prune.dpap.e0=0",
                 "prune.dpap.time_offset=100.0", "prune.dpap.min_time_steps=2"]
    cfg = load_config(str(tiny_yaml), overrides)
    lines: list[str] = []
    summary = train(cfg, tmp_path / "straight", quiet=True, log=lines.append)
    assert summary["time_steps"] == 2 and "T 2/4" in lines[-2]
    train(cfg, tmp_path / "split", quiet=True, log=lambda _: None, stop_after=1)
    train(cfg, tmp_path / "split", quiet=True, log=lambda _: None, resume=True)
    straight = read_metrics(tmp_path / "straight" / "metrics.jsonl")
    split = read_metrics(tmp_path / "split" / "metrics.jsonl")
    assert [r["test_accuracy"] for r in split] == [r["test_accuracy"] for r in straight]
    assert [r["pruning"]["time"] for r in split] == [r["pruning"]["time"] for r in straight]
    result = evaluate_run(tmp_path / "straight", "last")
    assert result["test_accuracy"] == straight[-1]["test_accuracy"]  # simulated with T = 2
