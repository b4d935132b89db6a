"""`prune.dpap.cadence: fit` in a run: the runner declares epochs and batches per epoch and
DPAP chooses its cadence from them (docs/DPAP.md#dpap-run-length)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from devprune.errors import ConfigError
from devprune.pruning.schedules import settling_cadence
from devprune.runner.config import config_from_dict
from devprune.runner.train import build_session


def _dpap(raw: dict[str, Any], **settings: Any) -> dict[str, Any]:
    raw["prune"] = {"method": "dpap", "dpap": {"cadence": "fit", **settings}}
    return raw


def test_the_runner_fits_the_cadence_to_the_run(tiny_raw: dict, tmp_path: Path) -> None:
    session = build_session(config_from_dict(_dpap(tiny_raw)), tmp_path)
    # 300 synthetic samples, val 20%: 240 / 50 -> 5 batches per epoch, 3 epochs, kappa 13
    batches = len(session.data.train)
    assert batches == 5
    expected = settling_cadence(3, batches, 13.0)
    config = session.pruner.config
    assert (config.every_batches, config.start, config.e0, config.end) == (
        expected.every_batches, expected.start, expected.e0, expected.end)
    assert (expected.every_batches, expected.start, expected.end) == (1, 5, 9)  # by hand


def test_fit_refuses_cadence_keys_given_beside_it(tiny_raw: dict, tmp_path: Path) -> None:
    cfg = config_from_dict(_dpap(tiny_raw, every_batches=3))
    with pytest.raises(ConfigError, match=re.escape("prune.dpap.cadence: 'fit' chooses")):
        build_session(cfg, tmp_path)


def test_manual_cadence_is_left_as_given(tiny_raw: dict, tmp_path: Path) -> None:
    tiny_raw["prune"] = {"method": "dpap", "dpap": {"every_batches": 3, "start": 1}}
    config = build_session(config_from_dict(tiny_raw), tmp_path).pruner.config
    assert (config.cadence, config.every_batches, config.start, config.end) == (
        "manual", 3, 1, None)
