"""DPAPPruner: configuration, statistics, reserve-driven pruning, masking modes, state."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from devprune.errors import ConfigError
from devprune.pruning import build_pruner
from devprune.pruning.dpap import DPAPConfig, DPAPPruner
from tests.core.models import ChainSNN, TinyResNet
from tests.pruning.loop import train_batches

FAST = {  # prune from the first step, small reserves: structure changes within a few batches
    "every_batches": 2, "start": 0, "e0": 0,
    "conv_reserve": 0.5, "fc_neuron_reserve": 0.5, "fc_synapse_reserve": 0.5,
}


def _train(model: nn.Module, pruner, x: torch.Tensor, batches: int, *, epochs: int = 1,
           lr: float = 1e-2, epoch_end: bool = True) -> list[dict]:
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    pruner.bind_optimizer(opt)
    events = []
    for epoch in range(epochs):
        train_batches(model, pruner, opt, x, batches, lambda out: (out - 0.5).pow(2).mean())
        if epoch_end:
            events.append(pruner.on_epoch_end(epoch))
    return events


# -- configuration ----------------------------------------------------------------------------
def test_registered_with_bc_cifar_defaults():
    pruner = build_pruner("dpap", ChainSNN(), torch.rand(2, 1, 8, 8))
    assert isinstance(pruner, DPAPPruner)
    cfg = pruner.cfg
    assert (cfg.conv_offset, cfg.conv_bonus, cfg.conv_reserve, cfg.conv_kappa) == (
        0.65, 5.0, 10.0, 12.0)
    assert (cfg.fc_synapse_offset, cfg.fc_neuron_kappa, cfg.gamma, cfg.e0) == (1.5, 13.0, 0.999, 5)
    assert (cfg.low_percentile, cfg.high_percentile, cfg.trace_decay) == (0.0, 75.0, 0.5)


@pytest.mark.parametrize(("field", "value"), [
    ("gamma", 1.5), ("every_batches", -1), ("conv_kappa", 0.0), ("readout", "peak"),
    ("low_percentile", 80.0),
])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ConfigError, match=f"prune.dpap.{field}"):
        DPAPConfig(**{field: value})


def test_unknown_key_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown key"):
        build_pruner("dpap", ChainSNN(), None, {"offset": 1.0})


def test_layer_selection_and_granularity():
    model = ChainSNN()
    pruner = build_pruner("dpap", model, None, {"exclude": ["c1"], "conv_granularity": "kernel",
                                                "linear_granularity": "synapse"})
    assert [la.name for la in pruner.layers] == ["c2", "f1"]
    assert pruner.unit_groups == [] and pruner.synapse_layers == ["c2", "f1"]
    assert pruner.synapse_reserve["c2"].shape == (6, 4)  # one reserve per kernel slice


# -- statistics -------------------------------------------------------------------------------
def test_batch_statistics_follow_the_bcm_formula():
    torch.manual_seed(0)
    model = ChainSNN()
    pruner = build_pruner("dpap", model, None)
    x = torch.rand(4, 1, 8, 8)
    records = []
    for _ in range(2):
        pruner.on_batch_start()
        model(x)
        records.append({k: (a.clone(), b.clone()) for k, (a, b) in
                        pruner.recorder.finish().items()})
        pruner.recorder.start()
        model(x)
        pruner.on_batch_end()
    # recompute f1's M, A, theta by hand from the recorded readouts
    (pre1, post1), (pre2, post2) = records[0]["f1"], records[1]["f1"]
    theta1 = post1.mean(0)
    # M = sum over batches of (a (a - theta))^T pre, theta = 0 before the first batch
    expected = (post1 * post1).T @ pre1 + (post2 * (post2 - theta1)).T @ pre2
    stats = pruner.stats["f1"]
    assert torch.allclose(stats.bcm, expected, atol=1e-5)
    assert torch.allclose(stats.activity, post1.sum(0) + post2.sum(0))
    assert stats.theta_count.item() == 8


@pytest.mark.parametrize("window", ["cumulative", "per_step"])
def test_accumulation_windows(window):
    torch.manual_seed(0)
    model = ChainSNN()
    pruner = build_pruner("dpap", model, None, {**FAST, "accumulation": window})
    _train(model, pruner, torch.rand(8, 1, 8, 8), batches=2)  # one step after batch 2
    stats = pruner.stats["f1"]
    bcm, activity = stats.window()
    assert stats.activity.abs().sum() > 0  # the all-reduce sums are cumulative either way
    if window == "per_step":
        assert bcm.abs().sum() == 0 and activity.abs().sum() == 0
    else:
        assert torch.equal(bcm, stats.bcm)
    assert "f1.theta_sum" in pruner.statistics()


# -- pruning ----------------------------------------------------------------------------------
def test_end_to_end_units_and_synapses_get_pruned():
    torch.manual_seed(0)
    model = ChainSNN()
    pruner = build_pruner("dpap", model, None, FAST)
    events = _train(model, pruner, torch.rand(16, 1, 8, 8), batches=6, epochs=2)
    last = events[-1]
    assert last["pruning_steps"] == 3 and last["connectivity"] < 1.0
    assert sum(la["units"] - la["units_alive"] for la in last["layers"].values()) > 0
    for name in pruner.masks.names():  # default mode: every masked weight is exactly zero
        weight = pruner.structure[name].weight
        assert torch.all(weight[~pruner.masks[name]] == 0)


def test_pruned_weights_stay_zero_under_adamw_in_default_mode():
    torch.manual_seed(0)
    model = ChainSNN()
    pruner = build_pruner("dpap", model, None, {**FAST, "every_batches": 3})
    x = torch.rand(8, 1, 8, 8)
    _train(model, pruner, x, batches=3)
    masks = {n: pruner.masks[n].clone() for n in pruner.masks.names()}
    assert any(not m.all() for m in masks.values())
    pruner.cfg.every_batches = 0  # no further steps: only the optimizer acts now
    _train(model, pruner, x, batches=40, lr=5e-2)
    for name, mask in masks.items():
        assert torch.all(pruner.structure[name].weight[~mask] == 0)
        assert torch.all(pruner.masks[name][~mask] == 0)  # permanence


def test_reference_mode_masks_softly_at_steps_only():
    torch.manual_seed(0)
    model = ChainSNN()
    pruner = build_pruner("dpap", model, None, {**FAST, "mode": "reference", "every_batches": 3})
    x = torch.rand(8, 1, 8, 8)
    _train(model, pruner, x, batches=3)
    masks = {n: pruner.masks[n].clone() for n in pruner.masks.names()}
    name = next(n for n, m in masks.items() if not m.all())
    assert torch.all(pruner.structure[name].weight[~masks[name]] == 0)  # zeroed at the step
    pruner.cfg.every_batches = 0
    _train(model, pruner, x, batches=5, lr=5e-2, epoch_end=False)
    assert torch.any(pruner.structure[name].weight[~masks[name]] != 0)  # retrained (soft)
    pruner.prune_step(10)  # the next step zeroes them again; nothing regrows
    assert torch.all(pruner.structure[name].weight[~masks[name]] == 0)
    assert torch.all(pruner.masks[name][~masks[name]] == 0)


def test_no_pruning_before_start():
    model = ChainSNN()
    pruner = build_pruner("dpap", model, None, {**FAST, "start": 5})
    events = _train(model, pruner, torch.rand(8, 1, 8, 8), batches=6)
    assert events[0]["pruning_steps"] == 0 and pruner.masks.connectivity() == 1.0


def test_residual_channels_are_pruned_as_a_group():
    torch.manual_seed(0)
    model = TinyResNet()
    pruner = build_pruner("dpap", model, None, FAST)
    group = next(g for g in pruner.unit_groups if len(g.members) > 1)
    _train(model, pruner, torch.rand(8, 3, 8, 8), batches=8)
    alive = [pruner.masks.unit_alive(m) for m in group.members]
    assert all(torch.equal(alive[0], a) for a in alive[1:])
    excluded = build_pruner("dpap", TinyResNet(), None, {"residual": "exclude"})
    assert all(len(g.members) == 1 for g in excluded.unit_groups)
    assert set(excluded.ungrouped) == set(group.members) | {
        m for g in pruner.unit_groups if len(g.members) > 1 for m in g.members}


def test_state_dict_resume_continues_identically():
    torch.manual_seed(0)
    model = ChainSNN()
    pruner = build_pruner("dpap", model, None, {**FAST, "theta": "per_slot"})
    x = torch.rand(8, 1, 8, 8)
    _train(model, pruner, x, batches=3)
    twin_model = copy.deepcopy(model)
    twin = build_pruner("dpap", twin_model, None, {**FAST, "theta": "per_slot"})
    twin.load_state_dict(pruner.state_dict())
    for a, b in ((pruner, model), (twin, twin_model)):
        a.on_batch_start()
        b(x)
        a.on_batch_end()
        a.prune_step(9)
    assert torch.equal(pruner.stats["f1"].bcm, twin.stats["f1"].bcm)
    assert torch.equal(pruner.synapse_reserve["f1"], twin.synapse_reserve["f1"])
    assert all(torch.equal(pruner.masks[n], twin.masks[n]) for n in pruner.masks.names())


@pytest.mark.parametrize("every", [2, 0])
def test_bookkeeping_stops_once_end_has_passed(every):
    """After the ``end`` step nothing prunes any more: the statistics that only feed future
    steps are not recorded (no cost), batches still count, the steps still report."""
    torch.manual_seed(0)
    model = ChainSNN()
    pruner = build_pruner("dpap", model, None, {**FAST, "every_batches": every, "end": 1})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    pruner.bind_optimizer(opt)
    x = torch.rand(8, 1, 8, 8)

    def batches(n: int) -> None:
        train_batches(model, pruner, opt, x, n, lambda out: (out - 0.5).pow(2).mean())

    if every:  # steps 0 and 1 after batches 2 and 4; batches 5 and 6 would feed step 2
        batches(4)
    else:  # epochs 0 and 1 prune; epoch 2 would feed step 2
        for epoch in range(2):
            batches(2)
            pruner.on_epoch_end(epoch)
    assert pruner.developing() is False
    snapshot = {n: {k: v.clone() for k, v in s.tensors().items()}
                for n, s in pruner.stats.items()}
    calls = []
    pruner.stats["f1"].update = lambda *a: calls.append(a)  # must not run any more
    batches(2)
    event = pruner.on_epoch_end(0 if every else 2)
    assert not calls and not pruner.recorder.recording
    for name, tensors in snapshot.items():
        for key, value in tensors.items():
            assert torch.equal(getattr(pruner.stats[name], key), value), (name, key)
    assert pruner.batches == 6
    # this epoch's steps: every 2 batches, 0 and 1 pruned and 2 (after batch 6) did not
    assert event["steps"] == ([0, 1, 2] if every else [2])
    assert event["pruning_steps"] == (2 if every else 0)
    restored = build_pruner("dpap", ChainSNN(), None, {**FAST, "every_batches": every,
                                                       "end": 1})
    restored.load_state_dict(pruner.state_dict())
    assert restored.developing() is False
