"""SD-SNN default mode (docs/SDSNN.md#sdsnn-deviations): silent units rank last, a step
removes at most a fraction of a layer, the N-batch cadence, and regeneration under hard masks
(a dead unit's synapses get a signal, and a regrown synapse receives gradient and moves)."""

import pytest
import torch
from torch import nn

from devprune.errors import ConfigError
from devprune.pruning.sdsnn import (
    SDSNNConfig,
    SDSNNPruner,
    cap_selection,
    silent_last,
    summarise_steps,
)
from tests.pruning.loop import train_batches


def test_silent_units_move_below_every_active_one_keeping_their_order():
    importance = torch.tensor([3.0, 0.5, 9.0, 2.0, 0.0])
    silent = torch.tensor([False, False, True, True, False])
    out = silent_last(importance, silent)
    # max + 1 = 10 is subtracted from the silent ones: 9 -> -1, 2 -> -8
    assert out.tolist() == [3.0, 0.5, -1.0, -8.0, 0.0]
    assert torch.argsort(out, stable=True).tolist() == [3, 2, 4, 1, 0]


def test_cap_keeps_the_least_important_of_the_chosen():
    chosen = torch.tensor([True, True, False, True, True])
    importance = torch.tensor([4.0, 1.0, 0.0, 3.0, 2.0])
    assert cap_selection(chosen, importance, 2).nonzero().flatten().tolist() == [1, 4]
    assert torch.equal(cap_selection(chosen, importance, 4), chosen)


def _mlp(**cfg):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 10), nn.ReLU(), nn.Linear(10, 3))
    config = SDSNNConfig(include=["0"], **cfg)
    return model, SDSNNPruner(model, torch.rand(2, 4), config)


def _batch(model, pruner, opt, x, y):
    train_batches(model, pruner, opt, x, 1, lambda out: nn.functional.cross_entropy(out, y))


def test_silent_units_are_pruned_first_and_the_step_is_capped():
    model, p = _mlp(count_threshold=1, fc_rate=40.0, regrowth=False, max_step_fraction=0.2)
    assert p.cfg.silent_units_first and p.cfg.step_cap == 0.2
    p.on_epoch_end(0)
    with torch.no_grad():  # inputs >= 0: units 6 and 7 never fire, every other one does
        model[0].weight.fill_(0.5)
        model[0].bias.fill_(0.1)
        model[0].weight[6:8] = -1.0
        model[0].bias[6:8] = -1.0
    ranges = p.ranges["0"]
    ranges.upper.copy_(torch.arange(10.0, 0.0, -1.0)[:, None].expand_as(ranges.upper))
    ranges.lower.copy_(-ranges.upper)  # widths 20, 18, ..., 2: unit 9 narrowest, 6-7 wide
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    p.next_epoch = p.cfg.prune_after + 1  # a period whose step prunes: activity is recorded
    _batch(model, p, opt, torch.rand(8, 4), torch.randint(0, 3, (8,)))
    chosen = p._select_units(p.structure["0"])
    # bottom int(10 * 40 / 100) = 4 would be 6, 7 (silent) then 9, 8; the cap keeps
    # int(0.2 * 10) = 2 of them, the silent ones.
    assert chosen.nonzero().flatten().tolist() == [6, 7]
    assert p.history["0"].nonzero().flatten().tolist() == [6, 7]


def test_reference_mode_keeps_the_reference_selection():
    cfg = SDSNNConfig(mode="reference")
    assert not cfg.silent_units_first and cfg.step_cap == 1.0 and cfg.every_batches == 0


def test_every_batches_steps_inside_the_epoch_and_counts_steps():
    model, p = _mlp(count_threshold=1, fc_rate=30.0, regrowth=False, every_batches=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    for _ in range(7):
        _batch(model, p, opt, x, y)
    events = p.on_epoch_end(0)
    # 7 batches: steps 0 (ranges), 1, 2 after batches 2, 4, 6; step 3 (> 2C = 2) prunes,
    # after batch 8 -- in the next epoch
    assert [e["step"] for e in events["steps"]] == [0, 1, 2]
    assert "neurons_pruned" not in events["steps"][-1]
    _batch(model, p, opt, x, y)
    events = p.on_epoch_end(1)
    assert events["neurons_pruned"] == {"0": 1}  # capped at int(0.1 * 10) = 1 of int(3)
    assert p.on_epoch_end(2) == {}  # no step in an epoch without batches


def test_summary_sums_counts_and_keeps_the_last_rates():
    steps = [{"step": 4, "neurons_pruned": {"a": 2}, "rates": {"a": 40.0},
              "regrowth": {"synapses_regenerated": {"a": 3}}, "regrown": 3,
              "connectivity": 0.8},
             {"step": 5, "neurons_pruned": {"a": 1}, "rates": {"a": 45.0},
              "regrowth": {"synapses_regenerated": {"a": 0}}, "regrown": 0,
              "connectivity": 0.7}]
    out = summarise_steps(steps, 0.7)
    assert out["neurons_pruned"] == {"a": 3} and out["rates"] == {"a": 45.0}
    assert out["regrown"] == 3 and out["regrowth"]["synapses_regenerated"] == {"a": 3}
    assert out["connectivity"] == 0.7


def test_a_regrown_synapse_of_a_dead_unit_receives_gradient_and_moves():
    # Linear(4, 3) - ReLU - Linear(3, 2); C = 1: pruning and regrowth from epoch 3.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    p = SDSNNPruner(model, torch.rand(2, 4), SDSNNConfig(
        include=["0"], count_threshold=1, fc_rate=34.0, max_step_fraction=1.0,
        silent_first=False, regrow_count_fc=0, regrow_p0_fc=0.0))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    p.bind_optimizer(opt)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(64, 4, generator=gen), torch.randint(0, 2, (64,), generator=gen)
    for epoch in range(4):
        _batch(model, p, opt, x, y)
        p.on_epoch_end(epoch)
    (dead,) = (~p.masks.unit_alive("0")).nonzero().flatten().tolist()  # int(3 * 0.34) = 1
    assert p.dead_grad.saved["0"]["2"][:, dead].abs().sum() > 0  # kept before zeroing
    assert torch.all(model[2].weight[:, dead] == 0)
    # Make the dead unit wanted: with every label 0 and outgoing weights (+1, -1), more of
    # its output lowers the loss, so G_j = sum(dL/d out * x_j) < 0 for every input x_j > 0.
    y = torch.zeros_like(y)
    p.dead_grad.saved["0"]["2"][:, dead] = torch.tensor([1.0, -1.0])
    saved = p.dead_grad.saved["0"]["2"][:, dead].clone()
    # The dead unit's true gradient is zero; the signal is the gradient through its saved
    # outgoing weights, (delta_out @ W_saved)^T @ x, summed over the period.
    _batch(model, p, opt, x, y)
    assert torch.all(p.grad_sums["0"][dead] == 0)
    first = p.dead_grad.sums["0"][dead].clone()
    assert first.abs().min() > 0
    events = p.on_epoch_end(4)  # above the 1.1st percentile once: count 0
    assert events["regrown"] == 0
    _batch(model, p, opt, x, y)
    second = p.dead_grad.sums["0"][dead].clone()
    events = p.on_epoch_end(5)  # twice in a row: count 1 > C_g = 0 -> restored
    # Only synapses that would excite the silent unit qualify: -G > 0 at both steps.
    wanted = (first < 0) & (second < 0)
    assert wanted.all() and events["regrown"] == 4
    assert p.masks["0"][dead].tolist() == wanted.tolist()
    kept = p.masks["0"].clone()
    kept[dead] = False
    scale = 0.1 * float(model[0].weight.detach()[kept].abs().mean())
    assert model[0].weight[dead].tolist() == pytest.approx([scale] * 4)  # -sign(G) 0.1 mean|w|
    assert torch.equal(model[2].weight[:, dead], saved)  # outgoing weights are back
    before = model[0].weight[dead].detach().clone()
    _batch(model, p, opt, x, y)
    assert torch.all(model[0].weight.grad[dead][wanted] != 0)  # the revived unit learns
    moved = model[0].weight[dead].detach() != before
    assert moved.all()


def test_state_round_trip_keeps_the_cadence_and_dead_unit_columns():
    model, p = _mlp(count_threshold=1, fc_rate=30.0, every_batches=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    for _ in range(9):
        _batch(model, p, opt, x, y)
    state = p.state_dict()
    _, twin = _mlp(count_threshold=1, fc_rate=30.0, every_batches=2)
    twin.load_state_dict(state)
    assert twin.batches == 9 and twin.next_epoch == p.next_epoch
    assert torch.equal(twin.dead_grad.saved["0"]["2"], p.dead_grad.saved["0"]["2"])
    assert p.dead_grad.saved["0"]["2"].abs().sum() > 0  # a unit was pruned and saved
    assert torch.equal(twin.activity["0"], p.activity["0"])


def test_epoch_line_shows_the_synapses_regrown_this_epoch():
    train = pytest.importorskip("devprune.runner.train")
    record = {"epoch": 1, "train_loss": 0.5, "val_accuracy": None, "test_accuracy": 0.9,
              "connectivity": 0.6, "layers": {"fc1": {"units_alive": 700, "units_total": 800}},
              "wall_time_s": 12.0, "pruning": {"regrown": 37}}
    assert "  regrown 37  12s" in train.epoch_line(record, 3)
    record["pruning"] = {}
    assert "regrown" not in train.epoch_line(record, 3)


def test_units_the_cap_defers_count_as_pruned_for_the_rate_rule():
    rates = {}
    for cap in (0.1, 1.0):
        _, p = _mlp(count_threshold=1, fc_rate=40.0, regrowth=False, max_step_fraction=cap)
        p.on_epoch_end(0)
        events = p._prune_and_update_rates(3)  # e = 2C + 1: alpha = 1
        assert events["units_counted_pruned"] == {"0": 4}  # int(10 * 0.4), pruned or deferred
        assert events["neurons_pruned"] == {"0": 1 if cap < 1 else 4}
        rates[cap] = p.rates["0"]
    assert rates[0.1] == rates[1.0] == pytest.approx(40 + (10 - 4) / 10)


def test_no_pruning_or_regrowth_after_end_while_ranges_go_on():
    model, p = _mlp(count_threshold=1, fc_rate=30.0, every_batches=1, end=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    for _ in range(6):  # steps 0..5: ranges at 0, 2C = 2, development at 3 only (end = 3)
        _batch(model, p, opt, x, y)
    steps = p.on_epoch_end(0)["steps"]
    developing = [e["step"] for e in steps if "neurons_pruned" in e]
    assert developing == [3]
    assert all("ranges" in e for e in steps[1:])  # ranges still update after the end
    assert not p._accumulating()  # no regrowth signal gathered for steps that cannot use it


@pytest.mark.parametrize("end", [2, 0, -1])
def test_end_must_come_after_2c(end):
    with pytest.raises(ConfigError, match=r"prune\.sdsnn\.end"):
        SDSNNConfig(count_threshold=1, end=end)


def test_activity_is_recorded_only_for_steps_that_prune():
    """The silent-unit activity ranks units at a pruning step only (and is dropped at every
    step): before 2C and after ``end`` no batch records it, so it costs nothing there."""
    model, p = _mlp(count_threshold=1, fc_rate=30.0, regrowth=False, end=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    recorded = []
    for epoch in range(6):
        _batch(model, p, opt, x, y)
        recorded.append(bool(p.activity))
        p.on_epoch_end(epoch)
    assert recorded == [False, False, False, True, False, False]  # 2C = 2, end = 3
