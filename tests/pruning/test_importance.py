"""DPAP arithmetic pinned against values worked out by hand from docs/DPAP.md#dpap-method."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from devprune.pruning import build_pruner, dpap
from devprune.pruning.dpap import LayerStatistics, accumulate_hebbian
from devprune.pruning.importance import (
    _kth_smallest_pair,
    developmental_factor,
    minmax_normalise,
    percentile,
    readout_weights,
    reserve_increment,
    reserve_update,
    reserve_update_,
    robust_normalise,
    running_mean_per_slot,
    spine_importance,
    trace_readout,
)
from tests.core.models import ChainSNN


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


# -- trace ------------------------------------------------------------------------------------
def trace_by_recursion(spikes: torch.Tensor, delta: float) -> torch.Tensor:
    """docs/DPAP.md#dpap-trace stepped literally: ``x[t] = delta x[t-1] + o[t]``, ``x[0] = 0``;
    the running code never steps it (trace_readout is one weighted sum over time)."""
    trace, steps = torch.zeros_like(spikes[0]), []
    for step in spikes.unbind(0):
        trace = delta * trace + step
        steps.append(trace)
    return torch.stack(steps)


def test_trace_recursion_by_hand():
    spikes = t([1.0, 0.0, 1.0]).reshape(3, 1, 1)  # T=3, B=1, one neuron
    # x1 = 1, x2 = 0.5, x3 = 0.25 + 1 = 1.25
    assert trace_by_recursion(spikes, 0.5).flatten().tolist() == [1.0, 0.5, 1.25]


def test_last_step_readout_is_final_trace_over_T():
    spikes = t([1.0, 0.0, 1.0]).reshape(3, 1, 1)
    assert trace_readout(spikes, 0.5, "last").item() == pytest.approx(1.25 / 3)


def test_mean_readout_is_time_average_of_trace():
    spikes = t([1.0, 0.0, 1.0]).reshape(3, 1, 1)
    assert trace_readout(spikes, 0.5, "mean").item() == pytest.approx((1 + 0.5 + 1.25) / 3)


def test_readout_weights_match_recursion_on_random_spikes():
    spikes = (torch.rand(5, 4, 3) > 0.5).float()
    full = trace_by_recursion(spikes, 0.5)
    assert torch.allclose(trace_readout(spikes, 0.5, "last"), full[-1] / 5)
    assert torch.allclose(trace_readout(spikes, 0.5, "mean"), full.mean(0))
    assert readout_weights(3, 0.5, "last").tolist() == pytest.approx([0.25 / 3, 0.5 / 3, 1 / 3])


def test_conv_readout_sums_space():
    # T=2, B=1, C=1, 1x2 map: per-step channel totals 2 then 1 -> x = 2, 2 -> last 2 / 2
    spikes = t([[1.0, 1.0], [0.0, 1.0]]).reshape(2, 1, 1, 1, 2)
    assert trace_readout(spikes).item() == pytest.approx(1.0)


# -- BCM --------------------------------------------------------------------------------------
POST = t([[1.0, 0.0], [0.5, 2.0]])  # [B=2, out=2]
PRE = t([[1.0, 2.0], [3.0, 0.0]])  # [B=2, in=2]


def statistics(theta: str) -> LayerStatistics:
    """DPAP's running accumulator of one [out=2, in=2] layer (what the training loop updates)."""
    return LayerStatistics(2, 2, theta, windowed=False, device=torch.device("cpu"))


def test_bcm_update_by_hand():
    # theta = (0.5, 1) for both samples: a(a - theta) rows (0.5, 0) and (0, 2)
    stats = statistics("per_unit")
    stats.theta_sum.copy_(t([0.5, 1.0]))
    stats.theta_count.fill_(1)
    stats.update(PRE, POST)
    assert stats.bcm.tolist() == [[0.5, 1.0], [6.0, 0.0]]
    assert stats.activity.tolist() == [1.5, 2.0]


def test_bcm_update_equals_sum_over_samples_loop():
    post, pre = torch.rand(7, 2), torch.rand(7, 2)
    stats = statistics("per_unit")
    stats.update(pre, post)  # first batch: theta = 0
    stats.update(pre, post)  # second: theta = the first batch's per-unit mean
    theta = post.mean(0)
    loop = sum(torch.outer(post[b] * post[b], pre[b]) for b in range(7)) + sum(
        torch.outer(post[b] * (post[b] - theta), pre[b]) for b in range(7))
    assert torch.allclose(stats.bcm, loop, atol=1e-6)


@pytest.mark.parametrize("active_share", [0.0, 0.05, 0.3, 0.7, 0.9])
def test_bcm_update_of_the_active_units_only_equals_the_full_product(active_share):
    """Units silent for the whole batch add exact zeros: computing the others' rows only
    (at most 70% active) gives the full addmm's bits; more active, the full addmm runs."""
    g = torch.Generator().manual_seed(0)
    batch, out_units, in_units = 100, 800, 784
    pre = torch.rand(batch, in_units, generator=g) * (
        torch.rand(batch, in_units, generator=g) < 0.2)
    post = torch.rand(batch, out_units, generator=g) * (
        torch.rand(batch, out_units, generator=g) < 0.05)  # sparse spiking activity
    silent = torch.randperm(out_units, generator=g)[:round(out_units * (1 - active_share))]
    post[:, silent] = 0
    hebb = post * (post - 0.05)
    start = torch.randn(out_units, in_units, generator=g)
    ours, full = start.clone(), start.clone()
    accumulate_hebbian(ours, hebb, pre)
    full.addmm_(hebb.T, pre)
    assert torch.equal(ours, full)
    assert torch.equal(ours[silent], start[silent])


def test_per_slot_threshold_in_bcm_update_broadcasts_per_sample():
    stats = statistics("per_slot")
    stats.slot_theta, stats.slot_count = t([[0.0, 0.0], [0.5, 2.0]]), t([1.0, 1.0])
    stats.update(PRE, POST)  # slot 1 equals its sample: no contribution
    assert stats.bcm.tolist() == [[1.0, 2.0], [0.0, 0.0]]


def test_per_unit_threshold_counts_every_sample():
    stats = statistics("per_unit")
    assert stats.threshold(2).tolist() == [0.0, 0.0]  # no sample yet
    stats.update(PRE, POST)
    assert (stats.theta_count.item(), stats.threshold(2).tolist()) == (2, [0.75, 1.0])
    stats.update(t([[0.0, 0.0]]), t([[3.0, 0.0]]))
    assert stats.theta_count.item() == 3
    assert stats.threshold(1).tolist() == pytest.approx([1.5, 2.0 / 3])


def test_per_slot_running_mean_by_hand():
    theta, counts = running_mean_per_slot(torch.zeros(2, 2), torch.zeros(2), POST)
    assert theta.tolist() == POST.tolist()  # k = 1: the first sample itself
    theta, counts = running_mean_per_slot(theta, counts, t([[3.0, 0.0], [0.5, 0.0]]))
    assert theta.tolist() == [[2.0, 0.0], [0.5, 1.0]]
    theta, counts = running_mean_per_slot(theta, counts, t([[2.0, 3.0]]))  # partial batch
    assert counts.tolist() == [3.0, 2.0]
    assert theta.tolist() == [[2.0, 1.0], [0.5, 1.0]]


# -- importance -------------------------------------------------------------------------------
def test_minmax_normalise():
    assert minmax_normalise(t([1.0, 3.0, 2.0])).tolist() == [0.0, 1.0, 0.5]
    assert minmax_normalise(t([4.0, 4.0])).tolist() == [0.5, 0.5]


def test_spine_importance_by_hand():
    bcm = t([[1.0, 1.0], [2.0, 2.0], [0.0, 3.0]])  # row sums 2, 4, 3 -> 0, 1, 0.5
    activity = t([5.0, 1.0, 3.0])  # -> 1, 0, 0.5
    assert spine_importance(bcm, activity).tolist() == [0.0, 0.0, 0.25]


# -- percentiles and robust normalisation -----------------------------------------------------
def test_percentile_linear_interpolation_by_hand():
    v = t([10.0, 1.0, 4.0, 3.0, 2.0])
    assert percentile(v, 75).item() == pytest.approx(4.0)  # position 3
    assert percentile(v, 80).item() == pytest.approx(5.2)  # 4 + 0.2 * (10 - 4)
    assert percentile(v, 0.1).item() == pytest.approx(1.004)
    assert percentile(v, 0).item() == 1.0
    assert percentile(v, 100).item() == 10.0


@pytest.mark.parametrize("n", [1, 2, 999, 300_001])
@pytest.mark.parametrize("q", [0.1, 5.0, 75.0, 80.0, 99.9])
def test_percentile_matches_numpy(n, q):
    gen = torch.Generator().manual_seed(n)
    for v in (torch.randn(n, generator=gen), torch.randint(0, 4, (n,), generator=gen).float()):
        assert percentile(v, q).item() == pytest.approx(np.percentile(v.numpy(), q), abs=1e-5)


def test_percentile_on_sorted_large_tensor_uses_exact_selection():
    v = torch.arange(400_000, dtype=torch.float32)
    assert percentile(v, 75).item() == pytest.approx(np.percentile(v.numpy(), 75))


def test_robust_normalise_min_to_p75():
    v = t([1.0, 2.0, 3.0, 4.0, 10.0])  # lo = 1, hi = 4
    assert robust_normalise(v, 0, 75).tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1, 1])


def test_robust_normalise_population_sets_the_scale():
    v = t([0.0, 2.0, 3.0, 4.0, 10.0])
    alive = torch.tensor([False, True, True, True, True])
    # alive values 2, 3, 4, 10: min 2, P75 = 4 + 0.25 * 6 = 5.5
    assert robust_normalise(v, 0, 75, alive).tolist() == pytest.approx([0, 0, 1 / 3.5, 2 / 3.5, 1])


def test_robust_normalise_empty_range_gives_every_entry_half_as_the_reference_unit():
    # The authors' unit(): marge = P75 - min = 1 - 1 = 0, so xx = 0.5 * ones_like(x) -- the 5.0
    # included, and no division by zero.
    v = t([1.0, 1.0, 1.0, 1.0, 5.0])  # min = P75 = 1
    assert robust_normalise(v, 0, 75).tolist() == [0.5] * 5


def test_robust_normalise_empty_range_sign_variant_of_default_mode():
    v = t([1.0, 1.0, 1.0, 1.0, 5.0, 0.0])  # P75 over the first five only: 1 = min
    alive = torch.tensor([True] * 5 + [False])
    out = robust_normalise(v, 0, 75, alive, empty_range="sign")
    assert out.tolist() == [0.5, 0.5, 0.5, 0.5, 1.0, 0.0]


# -- reserves ---------------------------------------------------------------------------------
def test_developmental_factor_truncates_toward_zero():
    assert developmental_factor(5, 5, 12) == 1.0
    assert developmental_factor(16, 5, 12) == 1.0
    assert developmental_factor(17, 5, 12) == pytest.approx(math.exp(-1))
    assert developmental_factor(29, 5, 12) == pytest.approx(math.exp(-2))
    assert developmental_factor(0, 5, 10) == 1.0  # int(-0.5) = 0, not floor = -1
    assert developmental_factor(14, 5, 10) == 1.0
    assert developmental_factor(15, 5, 10) == pytest.approx(math.exp(-1))
    assert developmental_factor(-8, 5, 12) == pytest.approx(math.e)  # int(-13/12) = -1


def test_reserve_increment_adds_bonus_only_when_positive():
    d = reserve_increment(t([0.0, 0.5, 0.2, 0.325]), offset=0.65, bonus=5.0)
    assert d.tolist() == pytest.approx([-0.65, 5.35, -0.25, 0.0])


def in_place(reserve: torch.Tensor, u: torch.Tensor, **constants: float) -> torch.Tensor:
    return reserve_update_(reserve.clone(), u.clone(), **constants)


# both forms of the rule, each pinned by hand: units run reserve_update, synapses (up to 16.8 M
# of them) the in-place reserve_update_ (it rounds differently, so neither is the other's oracle)
RESERVE_RULES = pytest.mark.parametrize("rule", [reserve_update, in_place],
                                        ids=["units", "synapses in place"])


@RESERVE_RULES
def test_reserve_update_by_hand(rule):
    p = rule(t([10.0, 10.0, 10.0]), t([0.0, 0.5, 0.2]), offset=0.65, bonus=5.0,
             factor=1.0, gamma=0.999)
    assert p.tolist() == pytest.approx([9.34, 15.34, 9.74])
    p = rule(t([0.1]), t([0.0]), offset=0.65, bonus=5.0, factor=math.exp(-1))
    assert p.item() == pytest.approx(0.0999 - 0.65 * math.exp(-1))
    p = rule(t([1.0]), t([0.5]), offset=0.65, bonus=5.0, factor=0.5, gamma=0.9)
    assert p.item() == pytest.approx(0.9 + (0.35 + 5.0) * 0.5)  # bonus scaled by g too


@RESERVE_RULES
def test_bottom_conv_filter_dies_around_epoch_26_with_bc_constants(rule):
    # docs/DPAP.md#dpap-dynamics: a filter always at the bottom (d = -0.65) from P0 = 10,
    # e0 = 5, kappa 12.
    p, death = torch.tensor([10.0]), None
    for epoch in range(5, 60):
        g = developmental_factor(epoch, 5, 12)
        p = rule(p, t([0.0]), offset=0.65, bonus=5.0, factor=g)
        if p.item() < 0:
            death = epoch
            break
    assert death is not None and 24 <= death <= 28


def test_in_place_reserve_update_overwrites_the_reserve():
    reserve, u = t([10.0, 10.0]), t([0.0, 0.5])
    result = reserve_update_(reserve, u, offset=0.65, bonus=5.0, factor=1.0, gamma=0.999)
    assert result is reserve and reserve.tolist() == pytest.approx([9.34, 15.34])


# -- exact selection at scale (issue #17): equal to numpy around and above the bracketing size --
SELECTION_SIZES = [(1 << 18) - 1, (1 << 18) + 1, 1_000_003]


def _orderings(n: int) -> dict[str, torch.Tensor]:
    """Random, tied, all-equal, sorted, reversed and a sample-fooling ordering (the strided
    sample sees only the largest values, so the bracket misses and the fallback runs)."""
    gen = torch.Generator().manual_seed(n)
    values = torch.randn(n, generator=gen)
    fooled = values.clone()
    fooled[:: max(1, n // (1 << 16))] = 1e6
    return {
        "random": values,
        "ties": torch.randint(0, 5, (n,), generator=gen).float(),
        "equal": torch.full((n,), 0.25),
        "sorted": values.sort().values,
        "reversed": values.sort(descending=True).values,
        "fooled": fooled,
    }


@pytest.mark.parametrize("n", SELECTION_SIZES)
def test_selection_equals_numpy_exactly(n):
    gen = torch.Generator().manual_seed(7)
    keep = torch.rand(n, generator=gen) < 0.7
    for name, v in _orderings(n).items():
        for population in (None, keep):
            chosen = v.numpy() if population is None else v.numpy()[population.numpy()]
            ordered = np.sort(chosen)
            m = ordered.size
            for k in (1, m // 100, (3 * m) // 4, m):
                first, second = _kth_smallest_pair(v, k, population)
                assert first.item() == ordered[k - 1], (name, k)
                assert second.item() == ordered[min(k, m - 1)], (name, k)
            for q in (0.0, 100.0):  # no interpolation: exactly numpy's value
                assert percentile(v, q, population).item() == np.percentile(chosen, q)
            for q in (0.1, 25.0, 75.0, 99.9):
                expected = np.percentile(chosen.astype(np.float64), q)
                got = percentile(v, q, population).item()
                assert got == pytest.approx(expected, rel=1e-6, abs=1e-6), (name, q)


def test_selection_off_numpy_path_equals_numpy():
    """Dtypes numpy does not take (and other devices) run the same bracketing on tensors."""
    n = (1 << 18) + 5
    gen = torch.Generator().manual_seed(11)
    v = torch.randn(n, generator=gen).to(torch.bfloat16)
    keep = torch.rand(n, generator=gen) < 0.6
    chosen = v.float().numpy()[keep.numpy()]
    ordered = np.sort(chosen)
    for k in (1, 100, (3 * chosen.size) // 4, chosen.size):
        first, second = _kth_smallest_pair(v, k, keep)
        assert first.dtype == torch.bfloat16
        assert first.item() == ordered[k - 1] and second.item() == ordered[min(k, chosen.size - 1)]


def test_dpap_unit_step_runs_reserve_update_exactly(monkeypatch):
    """DPAP's unit step (pruning/dpap.py) calls reserve_update: its reserves carry that
    function's bits, so the hand-pinned function above is the rule the units run."""
    torch.manual_seed(0)
    model = ChainSNN()
    pruner = build_pruner("dpap", model, None, {"start": 0, "e0": 0, "every_batches": 1000})
    x = torch.rand(4, 1, 8, 8)
    for _ in range(2):  # statistics from two batches, no structural step yet
        pruner.on_batch_start()
        model(x)
        pruner.on_batch_end()
    unit_scores = []

    def recording(*args, **kwargs):
        u = dpap_normalise(*args, **kwargs)
        if "out" not in kwargs:  # the synapse step normalises into a scratch buffer
            unit_scores.append(u.clone())
        return u

    dpap_normalise = dpap.robust_normalise
    monkeypatch.setattr(dpap, "robust_normalise", recording)
    before = {key: reserve.clone() for key, reserve in pruner.unit_reserve.items()}
    alive = {group.key: pruner._group_alive(group).clone() for group in pruner.unit_groups}
    event = pruner.prune_step(3)
    assert len(unit_scores) == len(pruner.unit_groups) > 0
    for group, u in zip(pruner.unit_groups, unit_scores, strict=True):
        const = pruner.cfg.constants(group.kind)
        rule = reserve_update(before[group.key], u, offset=const.offset, bonus=const.bonus,
                              factor=event["factor"][group.kind], gamma=pruner.cfg.gamma)
        expected = torch.where(alive[group.key], rule, before[group.key])
        assert torch.equal(pruner.unit_reserve[group.key], expected)


def test_readout_of_an_input_repeated_over_time_reads_it_once():
    # A directly encoded image is expanded over T (stride 0): its readout is sum_t w[t] * x,
    # the same as reading the materialised copies.
    image = torch.rand(3, 4)
    repeated = image.unsqueeze(0).expand(5, 3, 4)
    assert repeated.stride(0) == 0
    for readout in ("last", "mean"):
        copied = trace_readout(repeated.contiguous(), 0.5, readout)
        assert torch.allclose(trace_readout(repeated, 0.5, readout), copied, atol=1e-7)
        assert torch.allclose(copied, image * readout_weights(5, 0.5, readout).sum())
