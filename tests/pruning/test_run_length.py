"""The schedule fitted to a declared run length (docs/DPAP.md#dpap-run-length)."""

from __future__ import annotations

import math

import pytest
import torch

from devprune.errors import ConfigError
from devprune.models import build_model
from devprune.pruning import build_pruner
from devprune.pruning.dpap import DPAPConfig
from devprune.pruning.importance import developmental_factor
from devprune.pruning.schedules import SettlingCadence, settling_cadence


def test_short_run_steps_every_n_batches_by_hand() -> None:
    # kappa 12: e0 + 4 kappa = 2 + 48 = 50 steps must fit in the 2 * 540 batches before the
    # last epoch: one step every floor(1080 / 50) = 21 batches.
    assert settling_cadence(3, 540, 12) == SettlingCadence(21, 2, 2)
    # kappa 13, one epoch: 54 steps in its 540 batches -> every 10.
    assert settling_cadence(1, 540, 13) == SettlingCadence(10, 2, 2)
    # Too few batches: a step after every batch.
    assert settling_cadence(2, 10, 13) == SettlingCadence(1, 2, 2)


def test_long_run_keeps_per_epoch_steps_from_epoch_five() -> None:
    # 5 + 4 * 12 = 53 epochs of development fit in the 59 before the last one.
    assert settling_cadence(60, 100, 12) == SettlingCadence(0, 5, 5)
    assert settling_cadence(53, 100, 12).every_batches > 0  # 52 < 53: not yet


@pytest.mark.parametrize("epochs", [2, 3, 5, 10, 30])
@pytest.mark.parametrize("batches", [60, 100, 540])  # enough batches to settle
@pytest.mark.parametrize("kappa", [4.0, 12.0, 13.0])
def test_developmental_factor_has_fallen_when_the_last_epoch_begins(
        epochs: int, batches: int, kappa: float) -> None:
    cadence = settling_cadence(epochs, batches, kappa)
    if cadence.every_batches == 0:
        first_step_of_last_epoch = epochs - 1
    else:
        first_step_of_last_epoch = (epochs - 1) * batches // cadence.every_batches
    g = developmental_factor(first_step_of_last_epoch, cadence.e0, kappa)
    assert g <= math.exp(-4) + 1e-12


def test_bad_run_length_is_refused() -> None:
    with pytest.raises(ValueError, match="epochs >= 1"):
        settling_cadence(0, 10, 12)


def test_dpap_config_for_run_uses_its_largest_kappa_and_lets_given_keys_win() -> None:
    config = DPAPConfig.for_run(3, 540)  # default kappas: conv 12, fc 13 -> 13 rules
    assert (config.every_batches, config.start, config.e0) == (20, 2, 2)  # 1080 // 54
    config = DPAPConfig.for_run(3, 540, every_batches=7, fc_neuron_kappa=20.0)
    assert (config.every_batches, config.start, config.e0) == (7, 2, 2)
    assert config.fc_neuron_kappa == 20.0


def _mlp() -> torch.nn.Module:
    return build_model("snn-mlp", in_shape=(1, 28, 28), num_classes=10, time_steps=2)


def test_build_pruner_fits_dpap_to_the_declared_run() -> None:
    x = torch.rand(4, 1, 28, 28)
    pruner = build_pruner("dpap", _mlp(), x, epochs=3, batches_per_epoch=540)
    assert (pruner.config.every_batches, pruner.config.start) == (20, 2)
    pruner = build_pruner("dpap", _mlp(), x, {"fc_neuron_reserve": 4.0}, epochs=3,
                          batches_per_epoch=540)
    assert pruner.config.fc_neuron_reserve == 4.0 and pruner.config.every_batches == 20


@pytest.mark.parametrize("method, config, kwargs, message", [
    ("magnitude", None, {"epochs": 3, "batches_per_epoch": 5}, "does not fit its schedule"),
    ("dpap", None, {"epochs": 3}, "batches_per_epoch must be a positive integer"),
    ("dpap", None, {"epochs": 0, "batches_per_epoch": 5}, "epochs must be a positive"),
    ("dpap", None, {"epochs": True, "batches_per_epoch": 5}, "epochs must be a positive"),
    ("dpap", DPAPConfig(), {"epochs": 3, "batches_per_epoch": 5}, "give the settings as a dict"),
])
def test_build_pruner_refuses_an_unusable_run_length(method: str, config: object,
                                                     kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_pruner(method, _mlp(), torch.rand(4, 1, 28, 28), config, **kwargs)
