"""The derived-event quick presets: honest labels, one shared recipe, and pruning schedules
that actually prune within their short runs (test_presets.py checks that every preset builds
and trains one batch)."""

from __future__ import annotations

import math

import pytest

from devprune.runner.config import Config, load_config
from devprune.runner.presets import list_presets

DERIVED = sorted(name for name in list_presets() if name.startswith("derived-events-"))


def _batches_per_epoch(cfg: Config) -> int:
    assert cfg.data.limit_train is not None, "a quick preset bounds its training set"
    return math.ceil(cfg.data.limit_train / cfg.data.batch_size)


def test_the_dpap_and_sdsnn_derived_presets_ship() -> None:
    assert {"derived-events-snn-dpap-quick", "derived-events-snn-sdsnn-quick"} <= set(DERIVED)


@pytest.mark.parametrize("name", DERIVED)
def test_derived_preset_is_labelled_as_derived_events(name: str) -> None:
    cfg = load_config(name)
    description = list_presets()[name]
    assert cfg.data.name.endswith("-dvs-derived")
    assert "DERIVED" in description and "not N-MNIST" in description
    assert cfg.train.epochs <= 5, "quick presets run in minutes on a CPU"


def test_derived_presets_share_data_model_and_seed() -> None:
    def recipe(name: str) -> tuple:
        cfg = load_config(name)
        return (cfg.data.name, cfg.data.limit_train, cfg.data.limit_eval, cfg.data.seed,
                cfg.data.val_fraction, cfg.data.batch_size, sorted(cfg.data.options.items()),
                cfg.model.name, cfg.model.time_steps, cfg.train.seed, cfg.train.lr,
                cfg.train.optimizer, cfg.train.loss)

    assert len({repr(recipe(name)) for name in DERIVED}) == 1


def test_sdsnn_derived_preset_prunes_within_its_run() -> None:
    cfg = load_config("derived-events-snn-sdsnn-quick")
    sdsnn = cfg.method_config()
    assert sdsnn.every_batches > 0, "one step per epoch gives a 3-epoch run too few steps"
    # pruning runs at steps 2C < s <= end (0-based): enough of them for the 10%-per-step cap
    # to reach the first rate, all before the last epoch, which trains the settled structure
    per_epoch = _batches_per_epoch(cfg) // sdsnn.every_batches
    steps = cfg.train.epochs * per_epoch
    pruning_steps = [s for s in range(steps) if sdsnn.prune_after < s <= sdsnn.end]
    assert len(pruning_steps) >= 5
    assert sdsnn.end == (cfg.train.epochs - 1) * per_epoch - 1
    # no clipping within the run (docs/SDSNN.md#sdsnn-short-clip): clipping is from s > it
    assert sdsnn.clip_start >= steps - 1


def test_dpap_derived_preset_prunes_within_its_run() -> None:
    cfg = load_config("derived-events-snn-dpap-quick")
    dpap = cfg.method_config()
    assert dpap.every_batches > 0, "one step per epoch gives a 3-epoch run too few steps"
    steps = cfg.train.epochs * _batches_per_epoch(cfg) // dpap.every_batches
    # the reserve P0 of a conv kernel needs about P0 / c steps of zero importance to run out
    assert steps - dpap.start > math.ceil(dpap.conv_reserve / dpap.conv_offset)
