"""The epoch line: the runner's fields, then the pruner's own (Pruner.epoch_fields)."""

from __future__ import annotations

from typing import Any

from devprune.pruning.base import Pruner, default_epoch_fields
from devprune.runner.train import epoch_line

RECORD = {"epoch": 0, "train_loss": 0.5, "val_accuracy": None, "test_accuracy": 0.9,
          "connectivity": 0.5, "layers": {}, "wall_time_s": 12.0}


def _record(events: dict[str, Any]) -> dict[str, Any]:
    return {**RECORD, "pruning": events}


def test_shared_event_keys_give_the_default_fields() -> None:
    events = {"time": {"time_steps": 2, "full_time_steps": 4}, "regrown": 37}
    assert default_epoch_fields(events) == ["T 2/4", "regrown 37"]
    assert default_epoch_fields({"regrown": 0}) == ["regrown 0"]
    assert default_epoch_fields({}) == []
    line = epoch_line(_record(events), 3, Pruner(None))
    assert line.endswith("  T 2/4  regrown 37  12s")
    assert line == epoch_line(_record(events), 3)  # no pruner: the same default


def test_a_method_formats_its_own_fields() -> None:
    class Custom(Pruner):
        def epoch_fields(self, events: dict[str, Any]) -> list[str]:
            return [f"moved {events['moved']}"]

    line = epoch_line(_record({"moved": 5, "regrown": 1}), 3, Custom(None))
    assert line.endswith("  moved 5  12s") and "regrown" not in line
