"""In-training compaction of SD-SNN runs (docs/COMPACT.md#sdsnn-compaction): after the last
developing step (``prune.sdsnn.end``) the dead units are removed with the ranges, history and
masks that follow them, and the run logs what the masked run logs, with Adam and with SGD
momentum, at epoch and at batch cadence, resumed or not, in one process or two."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from devprune.errors import ConfigError
from devprune.runner.checkpoint import load_checkpoint
from devprune.runner.metrics import read_metrics
from tests.runner.test_train_compaction import (
    NEEDS_GLOO,
    _assert_close,
    _run,
    assert_same_evaluation,
    train_two_ranks,
)
from tests.runner.tiny import TINY

HIDDEN = [24, 16]  # the second layer loses the columns of the first one's dead units
# A step every batch (5 per epoch), C = 1: development at steps 3..6, so the last developing
# step runs after the second batch of epoch 1. Both hidden layers are pruned (up to 30% of
# their units per step) and the output layer is clipped to its epoch-0 range (SR's fc2).
SDSNN = {"method": "sdsnn", "sdsnn": {"every_batches": 1, "count_threshold": 1,
                                      "fc_rate": 30.0, "max_step_fraction": 1.0, "end": 6,
                                      "static_clip_layers": ["*out*"]}}


def _raw(every: int = 0, every_batches: int = 0, optimizer: str = "adam",
         epochs: int = 3) -> dict[str, Any]:
    raw = yaml.safe_load(yaml.safe_dump(TINY))
    raw["model"]["kwargs"]["hidden"] = HIDDEN
    raw["train"].update(threads=1, epochs=epochs, optimizer=optimizer, compact_every=every,
                        compact_every_batches=every_batches)
    if optimizer == "sgd":
        raw["train"].update(lr=0.1, momentum=0.9, nesterov=True)
    raw["prune"] = yaml.safe_load(yaml.safe_dump(SDSNN))
    return raw


def _assert_same(masked: list[dict[str, Any]], shrunk: list[dict[str, Any]]) -> None:
    for a, b in zip(masked, shrunk, strict=True):
        _assert_close(a, b, f"epoch {a['epoch']}")


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_shrink_after_the_end_logs_what_the_masked_run_logs(tmp_path: Path,
                                                               optimizer: str) -> None:
    masked = _run(_raw(0, optimizer=optimizer), tmp_path / "masked")
    shrunk = _run(_raw(1, optimizer=optimizer), tmp_path / "shrunk")
    # epoch 0 ends before the last developing step: nothing may be removed there yet
    assert [("compaction" in r) for r in shrunk] == [False, True, False]
    _assert_same(masked, shrunk)
    payload = load_checkpoint(tmp_path / "shrunk" / "last.pt")
    layers = shrunk[-1]["layers"]
    first, second = (payload["model"][f"features.layer{i}.fc.weight"] for i in (1, 2))
    assert first.shape[0] == layers["features.layer1.fc"]["units_alive"] < 24
    assert second.shape == (layers["features.layer2.fc"]["units_alive"], first.shape[0])
    assert second.shape[0] < 16
    ranges = payload["pruner"]["ranges"]  # the ranges follow their weights
    assert ranges["features.layer2.fc"]["upper"].shape == second.shape
    assert ranges["classifier.out.fc"]["upper"].shape[1] == second.shape[0]
    assert payload["pruner"]["regrowth"] == {}  # nothing reads it after the end


def test_the_kept_ranges_are_the_masked_runs(tmp_path: Path) -> None:
    """Entry by entry, the shrunk run's range state is the masked run's at the kept rows and
    columns (the removed entries' ranges are what was dropped)."""
    _run(_raw(0), tmp_path / "masked")
    _run(_raw(1), tmp_path / "shrunk")
    masked, shrunk = (load_checkpoint(tmp_path / d / "last.pt") for d in ("masked", "shrunk"))
    keep = shrunk["compaction"]["keep"]
    for name, ranges in shrunk["pruner"]["ranges"].items():
        rows, cols = keep["keep_out"][name], keep["keep_in"][name]
        for key, value in ranges.items():
            full = masked["pruner"]["ranges"][name][key][rows]
            full = full if cols is None else full[:, cols]
            assert torch.allclose(full.double(), value.double(), atol=1e-7), (name, key)


# conv layers: snn-small's conv2 filters and fc1 neurons, fc1 losing the 49 columns of each
# dead filter (as in test_train_compaction's linear-reads-conv case)
CONV = {"name": "snn-small", "time_steps": 2,
        "kwargs": {"channels": [4, 8], "hidden": 24, "encoder": "direct"}}


def test_a_conv_layer_and_its_reader_shrink_exactly(tmp_path: Path) -> None:
    def raw(every: int) -> dict[str, Any]:
        out = _raw(every)
        out["model"] = yaml.safe_load(yaml.safe_dump(CONV))
        out["prune"]["sdsnn"].update(include=["features.conv2.conv", "classifier.fc1.fc"],
                                     conv_rate=30.0, static_clip_layers=[])
        return out

    masked = _run(raw(0), tmp_path / "masked")
    shrunk = _run(raw(1), tmp_path / "shrunk")
    _assert_same(masked, shrunk)
    payload = load_checkpoint(tmp_path / "shrunk" / "last.pt")
    conv2 = payload["model"]["features.conv2.conv.weight"]
    fc1 = payload["model"]["classifier.fc1.fc.weight"]
    assert conv2.shape[0] < 8 and fc1.shape == (fc1.shape[0], conv2.shape[0] * 49)
    assert payload["pruner"]["ranges"]["classifier.fc1.fc"]["upper"].shape == fc1.shape


def test_shrinking_within_an_epoch_and_resuming(tmp_path: Path) -> None:
    """At batch cadence the model shrinks right after the last developing step, in the
    middle of epoch 1, and a run cut after that epoch resumes to the same result."""
    masked = _run(_raw(), tmp_path / "masked")
    raw = _raw(every_batches=1)
    shrunk = _run(raw, tmp_path / "shrunk")
    _assert_same(masked, shrunk)
    assert [r.get("compaction", {}).get("shrinks") for r in shrunk] == [None, 1, None]
    _run(raw, tmp_path / "cut", stop_after=2)
    assert "compaction" in load_checkpoint(tmp_path / "cut" / "last.pt")
    _assert_same(shrunk, _run(raw, tmp_path / "cut", resume=True))
    one, two = (load_checkpoint(tmp_path / d / "last.pt") for d in ("shrunk", "cut"))
    for key, value in one["model"].items():
        assert torch.allclose(value, two["model"][key], atol=1e-7), key


def test_eval_reads_a_shrunk_sdsnn_checkpoint(tmp_path: Path) -> None:
    assert_same_evaluation(_raw(0, epochs=2), _raw(1, epochs=2), tmp_path)


@pytest.mark.parametrize(("change", "reason"), [
    ({"end": None}, r"set prune\.sdsnn\.end"),
    ({"mode": "reference"}, "reference mode"),
])
def test_sdsnn_runs_that_cannot_shrink_are_refused(tmp_path: Path, change: dict[str, Any],
                                                   reason: str) -> None:
    raw = _raw(1)
    if "mode" in change:
        raw["prune"]["mode"] = change["mode"]
        raw["prune"]["sdsnn"]["regrow_signal"] = "auto"
    else:
        raw["prune"]["sdsnn"].update(change)
    with pytest.raises(ConfigError, match=f"train.compact_every=1.*{reason}"):
        _run(raw, tmp_path / "run")


@NEEDS_GLOO
def test_two_processes_shrink_an_sdsnn_run_alike(tmp_path: Path) -> None:
    ranks = train_two_ranks(_raw(every_batches=1), tmp_path)
    assert ranks[0]["shrinks"] == ranks[1]["shrinks"] == 1
    assert ranks[0]["model"]["features.layer1.fc.weight"].shape[0] < 24
    two = read_metrics(tmp_path / "two" / "metrics.jsonl")
    assert two[1]["compaction"]["shrinks"] == 1
