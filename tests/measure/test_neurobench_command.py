"""``devprune measure RUN --neurobench``: NeuroBench's Benchmark on the compacted model,
written to RUN/neurobench.json beside devprune's own numbers, which agree."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from devprune.cli import main
from tests.runner.tiny import TINY

KEYS = ["ParameterCount", "Footprint", "ConnectionSparsity", "ClassificationAccuracy",
        "ActivationSparsity", "SynapticOperations", "MembraneUpdates", "NeuronOperations"]


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("nb")
    cfg = yaml.safe_load(yaml.safe_dump(TINY))
    cfg["train"]["epochs"] = 2
    cfg["prune"] = {"method": "dpap", "dpap": {"every_batches": 2, "start": 0, "e0": 0,
                                               "fc_neuron_reserve": 0.5,
                                               "fc_synapse_reserve": 0.5}}
    (tmp / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp / "c.yaml"), "--out", str(tmp / "run"), "--quiet"]) == 0
    return tmp / "run"


def test_neurobench_json_holds_every_metric_and_devprune_agrees(
        pruned_run: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("neurobench")
    assert main(["measure", str(pruned_run), "--neurobench"]) == 0
    out = capsys.readouterr().out
    assert "| MembraneUpdates |" in out
    result = json.loads((pruned_run / "neurobench.json").read_text())
    theirs, ours = result["neurobench"], result["devprune"]
    assert set(KEYS) <= set(theirs) and set(KEYS) <= set(ours)
    assert result["model"] == "compacted" and result["samples"] == 50
    for key in ("ParameterCount", "Footprint"):
        assert ours[key] == theirs[key], key
    # NeuroBench averages per-batch float32 accuracies
    assert ours["ClassificationAccuracy"] == pytest.approx(theirs["ClassificationAccuracy"],
                                                           rel=1e-6)
    assert round(ours["ConnectionSparsity"], 4) == theirs["ConnectionSparsity"]
    assert ours["ConnectionSparsity"] > 0  # pruned synapses are still zeros after compaction
    assert ours["ActivationSparsity"] == pytest.approx(theirs["ActivationSparsity"], rel=1e-12)
    for key, value in theirs["SynapticOperations"].items():
        assert ours["SynapticOperations"][key] == pytest.approx(value, rel=1e-12), key
    # NeuroBench reads membranes of snnTorch neurons only: these come from devprune, and say so
    assert result["sources"]["MembraneUpdates"].startswith("devprune")
    assert ours["MembraneUpdates"] > 0
    assert ours["NeuronOperations"]["Effective Neuron Ops"] == pytest.approx(
        4 * ours["MembraneUpdates"])


def test_missing_neurobench_is_a_one_line_error(pruned_run: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "neurobench", None)  # import raises ImportError
    assert main(["measure", str(pruned_run), "--neurobench"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("devprune: error:") and "pip install --no-deps neurobench" in err
