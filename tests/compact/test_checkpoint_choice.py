"""``devprune compact RUN`` compacts the structure pruning ended with (``last.pt``), not the
best-validation checkpoint, which can come before most pruning, and says which it used
(defect D7 of issue 19)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from devprune.cli import main
from devprune.compact import load_compacted
from tests.runner.tiny import TINY

DPAP = ["prune.method=dpap", "prune.dpap.every_batches=2", "prune.dpap.start=1",
        "prune.dpap.e0=0", "prune.dpap.fc_neuron_reserve=1.0",
        "prune.dpap.fc_synapse_reserve=1.0", "train.threads=1"]


def test_compact_takes_the_last_checkpoint_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run, tiny_yaml = tmp_path / "run", tmp_path / "tiny.yaml"
    tiny_yaml.write_text(yaml.safe_dump(TINY))
    assert main(["train", str(tiny_yaml), "--quiet", "--set", *DPAP, "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    # the situation of the issue: the best-validation epoch is less pruned than the last
    assert summary["best_val"]["epoch"] < 2
    assert summary["best_val"]["connectivity"] > summary["final"]["connectivity"]
    capsys.readouterr()
    assert main(["compact", str(run), "--out", str(tmp_path / "small.pt")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"compacting {run / 'last.pt'} (the last epoch: "
                                          "after epoch 3 of 3")
    hidden = summary["units"]["features.layer1.fc"]["alive"]
    assert load_compacted(tmp_path / "small.pt").features.layer1.fc.out_features == hidden
    assert main(["compact", str(run), "--checkpoint", "best",
                 "--out", str(tmp_path / "best.pt")]) == 0
    assert f"compacting {run / 'best.pt'} (the best-validation epoch" in capsys.readouterr().out
    best_hidden = load_compacted(tmp_path / "best.pt").features.layer1.fc.out_features
    assert best_hidden > hidden
