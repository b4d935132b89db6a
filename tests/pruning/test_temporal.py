"""DPAP's time side (devprune.pruning.temporal): loss arithmetic, the reserve, the runner path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from devprune.errors import CheckpointError, ConfigError
from devprune.models import build_model
from devprune.pruning import build_pruner
from devprune.pruning.temporal import cumulative_rate_losses, last_step_contribution

TIME_ONLY = {"every_batches": 1, "start": 0, "e0": 0, "temporal": True,
             # spatial reserves that never run out: only the time side acts
             "fc_neuron_reserve": 1e9, "fc_synapse_reserve": 1e9}


def _snn(time_steps: int = 4) -> nn.Module:
    return build_model("snn-mlp", in_shape=(1, 6, 6), num_classes=3, time_steps=time_steps,
                       hidden=[8])


def _decided(model: nn.Module) -> nn.Module:
    """The output neuron of class 0 fires at every step, the others never: every sample of
    class 0 is right after one step, so later steps add nothing (u = 0)."""
    out = model.classifier[-1].fc
    with torch.no_grad():
        out.weight.zero_()
        out.bias.copy_(torch.tensor([10.0, -10.0, -10.0]))
    return model


def _batches(pruner, model: nn.Module, n: int, *, call_forward_hook: bool = True) -> None:
    x, y = torch.rand(16, 1, 6, 6), torch.zeros(16, dtype=torch.long)
    for _ in range(n):
        pruner.on_batch_start()
        out = model(x)
        if call_forward_hook:
            pruner.on_forward(out, y)
        pruner.on_batch_end()


# -- arithmetic -------------------------------------------------------------------------------
def test_cumulative_rate_losses_by_hand():
    # one sample, K = 2, target class 0; output spikes over T = 3: [1,0], [0,0], [1,1]
    spikes = torch.tensor([[[1.0, 0.0]], [[0.0, 0.0]], [[1.0, 1.0]]])
    losses = cumulative_rate_losses(spikes, torch.tensor([0]))
    # r_0 = [0,0]: (1+0)/2; r_1 = [1,0]: 0; r_2 = [.5,0]: (.25+0)/2; r_3 = [2/3,1/3]: 1/9
    assert torch.allclose(losses[:, 0], torch.tensor([0.5, 0.0, 0.125, 1 / 9]))


def test_last_step_contribution_is_the_gain_over_the_mean_gain():
    losses = torch.tensor([0.1, 0.04, 0.03, 0.029])
    # mean gain (0.1 - 0.029) / 3; last gain 0.001
    assert last_step_contribution(losses) == pytest.approx(0.001 / (0.071 / 3))
    assert last_step_contribution(torch.tensor([0.1, 0.12, 0.11])) is None  # no evidence
    assert last_step_contribution(torch.tensor([0.1, 0.05])) == pytest.approx(1.0)


# -- the reserve ------------------------------------------------------------------------------
def test_observed_losses_are_those_of_the_output_spikes():
    model = _snn()
    pruner = build_pruner("dpap", model, torch.rand(2, 1, 6, 6), TIME_ONLY)
    seen = []
    output_layer = [la for la in pruner.structure.layers if la.is_output][-1]
    module = dict(model.named_modules())[output_layer.post_name]
    handle = module.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    torch.manual_seed(0)
    x, y = torch.rand(16, 1, 6, 6), torch.randint(0, 3, (16,))
    pruner.on_batch_start()
    pruner.on_forward(model(x), y)
    pruner.on_batch_end()
    handle.remove()
    expected = cumulative_rate_losses(seen[0].double(), y).sum(1)
    assert torch.allclose(pruner.temporal.loss_sum, expected)
    assert pruner.temporal.samples.item() == 16


def test_reserve_update_and_drop_follow_dpap_arithmetic():
    model = _snn(time_steps=3)
    pruner = build_pruner("dpap", model, None, {**TIME_ONLY, "time_reserve": 0.5})
    temporal = pruner.temporal
    # evidence of 10 samples: L = [0.30, 0.10, 0.05, 0.045] -> mean gain 0.085, u = 0.005/0.085
    temporal.loss_sum.copy_(torch.tensor([0.30, 0.10, 0.05, 0.045], dtype=torch.float64) * 10)
    temporal.samples.fill_(10)
    u = 0.005 / 0.085
    event = temporal.step(factor=0.5, gamma=0.9)
    d = 2 * u - 0.2  # negative: no bonus
    assert event["contribution"] == pytest.approx(u)
    assert temporal.reserve == pytest.approx(0.9 * 0.5 + d * 0.5)
    assert not event["dropped"] and model.time_steps == 3
    # the same window again would be empty: no evidence, no change
    assert temporal.step(factor=0.5, gamma=0.9)["contribution"] is None
    # a harmful last step drives the reserve below zero: T drops by one, the reserve restarts
    temporal.loss_sum.add_(torch.tensor([0.3, 0.1, 0.05, 0.2], dtype=torch.float64) * 10)
    temporal.samples.add_(10)
    event = temporal.step(factor=1.0, gamma=0.9)
    assert event["dropped"] and model.time_steps == 2 and event["time_steps"] == 2
    assert temporal.reserve == 0.5 and temporal.loss_sum.shape == (3,)


def test_a_useful_last_step_earns_the_bonus():
    model = _snn(time_steps=2)
    temporal = build_pruner("dpap", model, None, {**TIME_ONLY, "time_bonus": 2.0}).temporal
    temporal.loss_sum.copy_(torch.tensor([0.3, 0.2, 0.1], dtype=torch.float64))
    temporal.samples.fill_(1)
    temporal.step(factor=1.0, gamma=1.0)  # u = 1: d = 2 - 0.2 + bonus 2
    assert temporal.reserve == pytest.approx(1.0 + 1.8 + 2.0)
    default = build_pruner("dpap", _snn(time_steps=2), None, TIME_ONLY).temporal
    default.loss_sum.copy_(torch.tensor([0.3, 0.2, 0.1], dtype=torch.float64))
    default.samples.fill_(1)
    default.step(factor=1.0, gamma=1.0)  # no bonus by default
    assert default.reserve == pytest.approx(1.0 + 1.8)


def test_training_shortens_t_down_to_the_floor_when_steps_never_pay():
    model = _decided(_snn(time_steps=4))
    pruner = build_pruner("dpap", model, None, {**TIME_ONLY, "time_offset": 1.0,
                                                "min_time_steps": 2})
    _batches(pruner, model, 6)
    assert model.time_steps == 2  # one step dropped per pruning step, then the floor holds
    events = pruner.on_epoch_end(0)
    assert events["time"]["time_steps"] == 2 and events["time"]["dropped"] == 2


def test_training_keeps_t_when_every_step_pays():
    model = _decided(_snn(time_steps=4))
    pruner = build_pruner("dpap", model, None, {**TIME_ONLY, "time_offset": -1.0})
    _batches(pruner, model, 4)
    assert model.time_steps == 4


def test_forgetting_on_forward_is_an_actionable_error():
    model = _snn()
    pruner = build_pruner("dpap", model, None, TIME_ONLY)
    with pytest.raises(ConfigError, match="on_forward"):
        _batches(pruner, model, 2, call_forward_hook=False)


def test_model_without_time_steps_is_refused():
    ann = nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(ConfigError, match="time_steps"):
        build_pruner("dpap", ann, torch.rand(2, 1, 6, 6), {"temporal": True})


def test_bad_floor_names_the_field():
    with pytest.raises(ConfigError, match="min_time_steps"):
        build_pruner("dpap", _snn(time_steps=3), None, {"temporal": True, "min_time_steps": 5})


def test_state_round_trip_restores_the_simulated_length():
    model = _decided(_snn(time_steps=4))
    pruner = build_pruner("dpap", model, None, {**TIME_ONLY, "time_offset": 1.0})
    _batches(pruner, model, 2)
    state = pruner.state_dict()
    fresh = _snn(time_steps=4)
    other = build_pruner("dpap", fresh, None, {**TIME_ONLY, "time_offset": 100.0})
    other.load_state_dict(state)
    assert fresh.time_steps == model.time_steps == 2
    assert torch.equal(other.temporal.loss_sum, pruner.temporal.loss_sum)
    spatial_only = build_pruner("dpap", _snn(time_steps=4), None, {"every_batches": 1})
    with pytest.raises(CheckpointError, match="temporal"):
        spatial_only.load_state_dict(state)
