"""``devprune measure RUN``: the table of a run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from devprune.cli import main
from devprune.measure import static_metrics, workload_metrics
from tests.core.models import ChainSNN


def write_run(directory: Path, scale: float) -> None:
    torch.manual_seed(0)
    model = ChainSNN()
    with torch.no_grad():
        model.c2.weight[:, :2] *= scale  # scale 0 prunes half of c2's kernels
    record = {"epoch": 0, "static": static_metrics(model),
              "workload": workload_metrics(model, [torch.rand(4, 1, 8, 8)])}
    directory.mkdir()
    (directory / "metrics.jsonl").write_text(json.dumps(record) + "\n")


def test_measure_prints_summary_and_table_beside_dense_twin(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path / "pruned", 0.0)
    write_run(tmp_path / "dense", 1.0)
    assert main(["measure", str(tmp_path / "pruned"), "--dense", str(tmp_path / "dense")]) == 0
    out = capsys.readouterr().out
    assert "SynapticOperations Effective_MACs" in out
    assert "| c2 |" in out and "dense connectivity" in out
    c2_row = next(line for line in out.splitlines() if line.startswith("| c2 |"))
    assert "100.00%" in c2_row and "50.00%" in c2_row


def test_measure_rejects_a_directory_without_measurements(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measure", str(tmp_path)]) == 2
    assert "no summary.json" in capsys.readouterr().err
