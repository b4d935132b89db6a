"""Baseline pruners (magnitude, random, lth, set, rigl): their arithmetic on tiny tensors,
hand-computed, and the guarantees every method gives (hard zeros, state round trip)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from devprune.errors import ConfigError
from devprune.pruning import build_pruner, criteria
from devprune.pruning.dynamic_sparse import drop_and_grow, rewire_share
from devprune.pruning.lottery import round_keep_fraction
from devprune.pruning.schedules import StepClock, gmp_keep_fraction
from devprune.pruning.targets import layer_fractions
from tests.pruning.loop import train_batches


class TwoLayer(nn.Module):
    """fc1 (4 -> 3), ReLU, fc2 (3 -> 2) with hand-set weights; fc2 is the output layer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.act, self.out = nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.fc1(x)))


class ThreeLayer(nn.Module):
    """fc1 (2 -> 2), fc2 (2 -> 2), out (2 -> 1): two pruned layers for global thresholds."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def _three_layer() -> ThreeLayer:
    model = ThreeLayer()
    with torch.no_grad():
        model.fc1.weight.copy_(torch.tensor([[0.1, 0.9], [0.5, -0.2]]))
        model.fc2.weight.copy_(torch.tensor([[2.0, 3.0], [-0.05, 1.0]]))
    return model


X3 = torch.ones(1, 2)

# -- schedules ---------------------------------------------------------------------------------


def test_gmp_schedule_values_by_hand() -> None:
    # k = target + (1 - target) (1 - p)^3, p = (step - start) / (end - start); target 0.1
    assert gmp_keep_fraction(0, 2, 6, 0.1) == 1.0            # before start: nothing pruned
    assert gmp_keep_fraction(2, 2, 6, 0.1) == pytest.approx(1.0)          # p = 0
    assert gmp_keep_fraction(3, 2, 6, 0.1) == pytest.approx(0.1 + 0.9 * 0.421875)  # p = 1/4
    assert gmp_keep_fraction(4, 2, 6, 0.1) == pytest.approx(0.1 + 0.9 * 0.125)     # p = 1/2
    assert gmp_keep_fraction(5, 2, 6, 0.1) == pytest.approx(0.1 + 0.9 / 64)        # p = 3/4
    assert gmp_keep_fraction(6, 2, 6, 0.1) == 0.1
    assert gmp_keep_fraction(9, 2, 6, 0.1) == 0.1
    # one-shot: start == end
    assert gmp_keep_fraction(3, 4, 4, 0.2) == 1.0 and gmp_keep_fraction(4, 4, 4, 0.2) == 0.2


def test_step_clock_epoch_and_batch_cadence() -> None:
    per_epoch = StepClock(0)
    assert per_epoch.batch_done() is None and per_epoch.epoch_done() == 0
    assert per_epoch.epoch_done() == 1
    every3 = StepClock(3)
    due = [every3.batch_done() for _ in range(7)]
    assert due == [None, None, 0, None, None, 1, None] and every3.epoch_done() is None
    assert not every3.next_batch_is_step()  # batch 8 of 9
    every3.batch_done()
    assert every3.next_batch_is_step()


def test_lth_round_fractions_reach_the_target() -> None:
    assert round_keep_fraction(1, 3, 0.125) == pytest.approx(0.5)
    assert round_keep_fraction(2, 3, 0.125) == pytest.approx(0.25)
    assert round_keep_fraction(3, 3, 0.125) == pytest.approx(0.125)


def test_rigl_cosine_share() -> None:
    assert rewire_share(0, 10, 0.3) == pytest.approx(0.3)
    assert rewire_share(5, 10, 0.3) == pytest.approx(0.15)
    assert rewire_share(10, 10, 0.3) == pytest.approx(0.0)
    assert rewire_share(11, 10, 0.3) == 0.0


# -- criteria ----------------------------------------------------------------------------------


def test_global_threshold_spans_layers() -> None:
    scores = {"a": torch.tensor([0.1, 0.9, 0.5, 0.2]), "b": torch.tensor([2.0, 3.0, 0.05, 1.0])}
    alive = {k: torch.ones(4, dtype=torch.bool) for k in scores}
    keep = criteria.global_keep(scores, alive, 0.5)  # 4 of 8: 3.0, 2.0, 1.0, 0.9
    assert keep["a"].tolist() == [False, True, False, False]
    assert keep["b"].tolist() == [True, True, False, True]


def test_per_layer_threshold_keeps_each_layers_share() -> None:
    scores = {"a": torch.tensor([0.1, 0.9, 0.5, 0.2]), "b": torch.tensor([2.0, 3.0, 0.05, 1.0])}
    alive = {k: torch.ones(4, dtype=torch.bool) for k in scores}
    keep = criteria.layerwise_keep(scores, alive, {"a": 0.5, "b": 0.25})
    assert keep["a"].tolist() == [False, True, True, False]
    assert keep["b"].tolist() == [False, True, False, False]


def test_pruned_entries_never_return() -> None:
    scores = torch.tensor([5.0, 1.0, 2.0])
    keep = criteria.top_k_mask(scores, torch.tensor([False, True, True]), 2)
    assert keep.tolist() == [False, True, True]


def test_unit_norms_by_hand() -> None:
    w = torch.tensor([[3.0, -4.0], [1.0, 1.0], [0.0, -2.0]])
    assert criteria.unit_norm_scores(w, 1).tolist() == [7.0, 2.0, 2.0]
    assert criteria.unit_norm_scores(w, 2).tolist() == pytest.approx([5.0, math.sqrt(2), 2.0])


def test_global_structured_counts_weights_per_unit() -> None:
    # layer a: units of fan-in 1 with scores 1, 3; layer b: units of fan-in 3 with 2, 2.
    scores = {"a": torch.tensor([1.0, 3.0]), "b": torch.tensor([2.0, 2.0])}
    alive = {k: torch.ones(2, dtype=torch.bool) for k in scores}
    normed = criteria.normalised_per_layer(scores, alive)  # a: 0.5, 1.5; b: 1, 1
    assert normed["a"].tolist() == [0.5, 1.5]
    keep = criteria.global_keep(normed, alive, 0.5, sizes={"a": 1, "b": 3})  # budget 4 of 8
    assert keep["a"].tolist() == [False, True] and keep["b"].tolist() == [True, False]


def test_layer_targets_by_pattern_and_errors() -> None:
    assert layer_fractions({"fc*": 0.3, "fc2": 0.1}, ["fc1", "fc2"], "t") == \
        {"fc1": 0.3, "fc2": 0.1}
    with pytest.raises(ConfigError, match="no entry for pruned layer 'fc2'"):
        layer_fractions({"fc1": 0.3}, ["fc1", "fc2"], "t")
    with pytest.raises(ConfigError, match="match no pruned layer"):
        layer_fractions({"fc1": 0.3, "conv*": 0.2, "fc2": 0.5}, ["fc1", "fc2"], "t")


# -- the pruners on a model ----------------------------------------------------------------------


def test_magnitude_global_and_per_layer_on_a_model() -> None:
    model = _three_layer()
    pruner = build_pruner("magnitude", model, X3, {"target": 0.5, "schedule": "oneshot",
                                                   "end": 0})
    pruner.on_epoch_end(0)
    assert pruner.masks["fc1"].tolist() == [[False, True], [False, False]]
    assert pruner.masks["fc2"].tolist() == [[True, True], [False, True]]
    model = _three_layer()
    per_layer = build_pruner("magnitude", model, X3, {"target": {"fc1": 0.5, "fc2": 0.25},
                                                      "schedule": "oneshot", "end": 0})
    per_layer.on_epoch_end(0)
    assert per_layer.masks["fc1"].tolist() == [[False, True], [True, False]]
    assert per_layer.masks["fc2"].tolist() == [[False, True], [False, False]]
    assert model.fc2.weight.tolist() == [[0.0, 3.0], [0.0, 0.0]]


def test_structured_magnitude_removes_the_weakest_neurons() -> None:
    model = _three_layer()  # fc1 rows L1: 1.0, 0.7; fc2 rows: 5.0, 1.05
    pruner = build_pruner("magnitude", model, X3, {"target": 0.5, "granularity": "unit",
                                                   "scope": "layer", "schedule": "oneshot",
                                                   "end": 0})
    pruner.on_epoch_end(0)
    assert pruner.masks.unit_alive("fc1").tolist() == [True, False]
    assert pruner.masks.unit_alive("fc2").tolist() == [True, False]


def test_gradual_schedule_prunes_on_its_steps() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 100), nn.ReLU(), nn.Linear(100, 10))
    pruner = build_pruner("magnitude", model, torch.ones(1, 10),
                          {"target": 0.1, "start": 1, "end": 3})
    kept = []
    for epoch in range(5):
        pruner.on_epoch_end(epoch)
        kept.append(pruner.masks.connectivity())
    # step 1: k = 1.0; step 2: 0.1 + 0.9 / 8 = 0.2125 (213 of 1000); step 3 on: 0.1
    assert kept == [1.0, 1.0, 0.213, 0.1, 0.1]


def test_random_priorities_are_seeded_and_nested() -> None:
    def masks(seed: int) -> list[torch.Tensor]:
        model = nn.Sequential(nn.Linear(10, 50), nn.ReLU(), nn.Linear(50, 2))
        pruner = build_pruner("random", model, torch.ones(1, 10),
                              {"target": 0.2, "start": 0, "end": 1, "seed": seed})
        out = []
        for epoch in range(2):
            pruner.on_epoch_end(epoch)
            out.append(pruner.masks["0"].clone())
        return out

    a, b, c = masks(1), masks(1), masks(2)
    assert torch.equal(a[1], b[1]) and not torch.equal(a[1], c[1])
    assert bool((a[1] <= a[0]).all())  # nested: the second step only removes more
    assert int(a[1].sum()) == 100


def test_lth_rewinds_survivors_to_the_saved_weights_exactly() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    pruner = build_pruner("lth", model, torch.ones(1, 6),
                          {"target": 0.25, "rounds": 2, "round_epochs": 1})
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    pruner.bind_optimizer(opt)
    x = torch.randn(16, 6)
    _train_epoch(model, pruner, opt, x)
    events = pruner.on_epoch_end(0)
    assert events["round"] == 1 and events["keep_target"] == pytest.approx(0.5)
    mask = pruner.masks["0"]
    assert int(mask.sum()) == 24  # 48 * 0.5
    assert torch.equal(model[0].weight, initial["0.weight"] * mask)  # rewound, then masked
    assert torch.equal(model[2].weight, initial["2.weight"])        # unpruned: rewound too
    assert not opt.state  # a fresh optimizer for the next round
    _train_epoch(model, pruner, opt, x)
    assert pruner.on_epoch_end(1)["round"] == 2 and int(pruner.masks["0"].sum()) == 12
    _train_epoch(model, pruner, opt, x)
    assert "round" not in pruner.on_epoch_end(2)  # the ticket trains on


@pytest.mark.parametrize("method", ["set", "rigl"])
def test_dynamic_sparse_keeps_connectivity_constant(method: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5))
    pruner = build_pruner(method, model, torch.ones(1, 20),
                          {"target": 0.2, "every_batches": 2, "end": 3, "alpha": 0.3})
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    pruner.bind_optimizer(opt)
    assert int(pruner.masks["0"].sum()) == 120
    before = pruner.masks["0"].clone()
    _train_epoch(model, pruner, opt, torch.randn(8, 20), batches=2)
    after = pruner.masks["0"]
    assert int(after.sum()) == 120
    moved = int((after & ~before).sum())
    assert moved == 36  # floor(0.3 * 120) dropped, as many regrown among the earlier pruned
    assert pruner.on_epoch_end(0)["regrown"] == 36


def test_drop_and_grow_by_hand() -> None:
    mask = torch.tensor([True, True, True, False, False, False])
    weight = torch.tensor([0.5, -0.1, 0.3, 0.0, 0.0, 0.0])
    grads = torch.tensor([0.0, 0.0, 0.0, 0.2, 0.9, 0.4])
    new, moved = drop_and_grow(mask, weight, grads, 0.34)  # floor(0.34 * 3) = 1
    assert moved == 1 and new.tolist() == [True, False, True, False, True, False]


def test_rigl_regrows_where_the_dense_gradient_is_largest() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    pruner = build_pruner("rigl", model, torch.ones(1, 3),
                          {"target": 0.5, "every_batches": 1, "end": 0, "alpha": 0.34})
    weight = model[0].weight
    with torch.no_grad():
        weight.copy_(torch.tensor([[1.0, 0.2, 0.0], [0.0, 0.5, 0.0]]))
    pruner.masks.masks["0"] = torch.tensor([[True, True, False], [False, True, False]])
    pruner.masks.invalidate()
    weight.grad = torch.tensor([[0.0, 0.0, 0.3], [0.8, 0.0, 0.1]])
    pruner.on_after_backward()  # keeps the dense gradient, then masks it
    pruner.on_batch_end()       # drop |0.2| -> regrow the entry with |grad| 0.8
    assert pruner.masks["0"].tolist() == [[True, False, False], [True, True, False]]
    assert weight[1, 0].item() == 0.0  # a regrown weight starts at zero


# -- shared guarantees ---------------------------------------------------------------------------

BASELINES = {
    "magnitude": {"target": 0.3, "start": 0, "end": 1},
    "random": {"target": 0.3, "start": 0, "end": 1},
    "lth": {"target": 0.3, "rounds": 2, "round_epochs": 1},
    "set": {"target": 0.3, "every_batches": 2, "end": 3},
    "rigl": {"target": 0.3, "every_batches": 2, "end": 3},
}


def _train_epoch(model: nn.Module, pruner, opt, x: torch.Tensor, batches: int = 3) -> None:
    train_batches(model, pruner, opt, x, batches, lambda out: out.pow(2).mean() + out.sum() * 0.01)


@pytest.mark.parametrize("method", sorted(BASELINES))
def test_pruned_weights_stay_exactly_zero_under_adamw(method: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    pruner = build_pruner(method, model, torch.ones(1, 8), BASELINES[method])
    opt = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.1, betas=(0.9, 0.99))
    pruner.bind_optimizer(opt)
    x = torch.randn(12, 8)
    for epoch in range(3):
        _train_epoch(model, pruner, opt, x)
        pruner.on_epoch_end(epoch)
        _train_epoch(model, pruner, opt, x)  # steps after the structural step too
        pruned = ~pruner.masks["0"]
        assert bool((model[0].weight[pruned] == 0).all())
        assert bool((opt.state[model[0].weight]["exp_avg"][pruned] == 0).all())
    assert bool((~pruner.masks["0"]).any())
    assert pruner.masks.connectivity() == pytest.approx(0.3, abs=0.01)


@pytest.mark.parametrize("method", sorted(BASELINES))
def test_state_round_trip(method: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    pruner = build_pruner(method, model, torch.ones(1, 8), BASELINES[method])
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    pruner.bind_optimizer(opt)
    _train_epoch(model, pruner, opt, torch.randn(12, 8))
    pruner.on_epoch_end(0)
    state = pruner.state_dict()
    clone = build_pruner(method, model, torch.ones(1, 8), BASELINES[method])
    clone.load_state_dict(state)
    assert torch.equal(clone.masks["0"], pruner.masks["0"])
    assert clone.state_dict().keys() == state.keys()


@pytest.mark.parametrize("settings, message", [
    ({"target": 0.0}, "not a kept fraction in \\(0, 1\\]"),
    ({"target": 1.5}, "not a kept fraction"),
    ({"target": {"0": -0.1}}, r"target\['0'\]"),
    ({"start": 5, "end": 2}, "end: 2 precedes start 5"),
    ({"norm": 3}, "norm"),
])
def test_bad_settings_are_refused_naming_the_key(settings: dict, message: str) -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with pytest.raises(ConfigError, match=message):
        build_pruner("magnitude", model, torch.ones(1, 2), settings)
