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
    # 3 epochs of 540 batches, kappa 12: the first epoch trains (warm-up), and the
    # 4 * 12 = 48 steps of development fit in epoch 2's 540 batches: every floor(540 / 48)
    # = 11 batches, from step 540 // 11 = 49 (it ends batch 550, the first after the
    # warm-up).
    assert settling_cadence(3, 540, 12) == SettlingCadence(11, 49, 49, 97)
    # ... and its last step ends batch 11 * 98 = 1078 of the 1080 before the last epoch
    # kappa 13, one epoch: no warm-up, 2 + 52 = 54 steps in its 540 batches -> every 10.
    assert settling_cadence(1, 540, 13) == SettlingCadence(10, 2, 2, None)
    # Two epochs: no warm-up either; 100 // 54 = 1.
    assert settling_cadence(2, 100, 13) == SettlingCadence(1, 2, 2, 99)


def test_long_run_keeps_per_epoch_steps_from_epoch_five() -> None:
    # 5 + 4 * 12 = 53 epochs of development fit in the 59 before the last one.
    assert settling_cadence(60, 100, 12) == SettlingCadence(0, 5, 5, 58)
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
    last_step = (first_step_of_last_epoch - 1 if cadence.every_batches
                 else epochs - 2)
    assert cadence.end == last_step  # no step of the last epoch prunes
    if epochs >= 3 and cadence.every_batches:  # nothing pruned in the first epoch
        assert cadence.every_batches * (cadence.start + 1) > batches


def test_bad_run_length_is_refused() -> None:
    with pytest.raises(ValueError, match="epochs >= 1"):
        settling_cadence(0, 10, 12)


def test_dpap_config_for_run_uses_its_largest_kappa_and_lets_given_keys_win() -> None:
    config = DPAPConfig.for_run(3, 540)  # default kappas: conv 12, fc 13 -> 13 rules
    # every 540 // 52 = 10 batches, from step 540 // 10 = 54
    assert (config.every_batches, config.start, config.e0, config.end) == (10, 54, 54, 107)
    config = DPAPConfig.for_run(3, 540, every_batches=7, fc_neuron_kappa=20.0)
    # the given cadence wins and sets the onset: 540 // 7 = 77
    assert (config.every_batches, config.start, config.e0, config.end) == (7, 77, 77, 153)
    assert config.fc_neuron_kappa == 20.0


def _mlp() -> torch.nn.Module:
    return build_model("snn-mlp", in_shape=(1, 28, 28), num_classes=10, time_steps=2)


def test_build_pruner_fits_dpap_to_the_declared_run() -> None:
    x = torch.rand(4, 1, 28, 28)
    pruner = build_pruner("dpap", _mlp(), x, epochs=3, batches_per_epoch=540)
    assert (pruner.config.every_batches, pruner.config.start) == (10, 54)
    pruner = build_pruner("dpap", _mlp(), x, {"fc_neuron_reserve": 4.0}, epochs=3,
                          batches_per_epoch=540)
    assert pruner.config.fc_neuron_reserve == 4.0 and pruner.config.every_batches == 10


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


def test_dpap_prunes_nothing_after_end() -> None:
    from tests.pruning.loop import train_batches

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3))
    config = DPAPConfig(every_batches=1, start=0, e0=0, end=2, fc_neuron_reserve=0.0,
                        fc_synapse_reserve=0.0, fc_neuron_offset=3.0, fc_synapse_offset=3.0)
    pruner = build_pruner("dpap", model, torch.rand(4, 6), config)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.rand(8, 6), torch.randint(0, 3, (8,))
    train_batches(model, pruner, opt, x, 5, lambda out: torch.nn.functional.cross_entropy(out, y))
    events = pruner.on_epoch_end(0)
    assert events["steps"] == [0, 1, 2, 3, 4] and events["pruning_steps"] == 3  # 0, 1, 2


def test_dpap_end_before_start_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"prune\.dpap\.end"):
        DPAPConfig(start=5, end=4)


def test_short_runs_raise_the_linear_reserves_not_given() -> None:
    short = DPAPConfig.for_run(3, 540, fc_neuron_reserve=4.0)
    # conv filters keep the reference's 10 (their weaker offset c = 0.65 left every filter
    # unpruned at 15 in a 3-epoch run); the linear reserve given stays, the other is raised
    assert (short.conv_reserve, short.fc_neuron_reserve, short.fc_synapse_reserve) == (
        10.0, 4.0, 15.0)
    assert DPAPConfig.for_run(3, 540, conv_reserve=7.0).conv_reserve == 7.0
    long = DPAPConfig.for_run(100, 540)  # per-epoch steps: the reference's P0 = 10 stays
    assert long.every_batches == 0 and long.fc_synapse_reserve == 10.0
