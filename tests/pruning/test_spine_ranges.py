"""Dendritic-spine ranges: hand-computed counters (C+1 semantics), shrinkage, clipping, and a
per-element loop written straight from docs/SDSNN.md#sdsnn-ranges as the oracle."""

import pytest
import torch

from devprune.pruning.spine_ranges import SpineRanges


def _ranges(values, c=2, shrink=0.75):
    return SpineRanges(torch.tensor(values, dtype=torch.float32), c, shrink)


def test_initial_range_is_plus_minus_the_layer_max_not_the_min():
    r = _ranges([[0.4, -0.9], [0.1, 0.2]])
    assert torch.all(r.upper == 0.4) and torch.all(r.lower == -0.4)


def test_upper_bound_moves_by_mean_overshoot_after_c_plus_one_epochs():
    r = _ranges([[1.0, 0.0]], c=2)  # r+ = 1
    r.update(torch.tensor([[1.2, 0.0]]))  # beyond, but not at the previous epoch: no count
    assert r.upper_count[0, 0] == 0 and r.upper[0, 0] == 1.0
    r.update(torch.tensor([[1.3, 0.0]]))  # counted: n=1, D=0.3
    assert r.upper_count[0, 0] == 1 and r.upper_overshoot[0, 0] == pytest.approx(0.3)
    ev = r.update(torch.tensor([[1.1, 0.0]]))  # n=2 >= C: r+ += (0.3 + 0.1) / 2
    assert ev.expanded_upper == 1
    assert r.upper[0, 0] == pytest.approx(1.2)
    assert r.upper_count[0, 0] == 0 and r.upper_overshoot[0, 0] == 0
    assert r.upper[0, 1] == 1.0  # the other weight never crossed


def test_an_interruption_resets_the_count_and_the_overshoot():
    r = _ranges([[1.0]], c=2)
    r.update(torch.tensor([[1.2]]))
    r.update(torch.tensor([[1.3]]))  # n=1
    r.update(torch.tensor([[0.5]]))  # inside: reset
    assert r.upper_count[0, 0] == 0 and r.upper_overshoot[0, 0] == 0
    r.update(torch.tensor([[1.4]]))  # beyond again, previous epoch was inside: still 0
    assert r.upper_count[0, 0] == 0 and r.upper[0, 0] == 1.0


def test_lower_bound_is_symmetric_with_negative_overshoot():
    r = _ranges([[1.0, -0.2]], c=1)  # r- = -1
    r.update(torch.tensor([[0.0, -1.5]]))
    ev = r.update(torch.tensor([[0.0, -1.25]]))  # counted once, C=1: r- += -0.25 / 1
    assert ev.expanded_lower == 1 and r.lower[0, 1] == pytest.approx(-1.25)
    assert r.lower[0, 0] == -1.0


def test_shrinkage_after_c_counted_decreases_scales_both_bounds():
    r = _ranges([[1.0, 0.9]], c=2)  # previous magnitude starts at |W after epoch 0|
    for value in (0.8, 0.7):
        ev = r.update(torch.tensor([[1.0, value]]))
        assert ev.shrunk == 0
    ev = r.update(torch.tensor([[1.0, 0.6]]))  # third decrease = second counted one
    assert ev.shrunk == 1
    assert r.upper[0, 1] == pytest.approx(0.75) and r.lower[0, 1] == pytest.approx(-0.75)
    assert r.shrink_count[0, 1] == 0


def test_clip_counts_and_clamps_into_each_weights_range():
    r = _ranges([[0.5, -0.1, 0.2]])
    w = torch.nn.Parameter(torch.tensor([[0.7, -0.9, 0.1]]))
    assert r.clip_(w) == 2
    assert w.data.tolist() == [[0.5, -0.5, pytest.approx(0.1)]]


def test_width_importance_min_max_and_constant_layer():
    r = _ranges([[1.0, 0.5]])
    # All widths equal: the reference's unit() gives every entry 0.5 (marge == 0 branch),
    # not 0/0 and not zeros.
    assert torch.all(r.width_importance() == 0.5)
    r.upper[0, 1] = 2.0
    assert r.width_importance().tolist() == [[0.0, 1.0]]


def _oracle(history, c, shrink):
    """Element-wise loops, literally docs/SDSNN.md#sdsnn-ranges (sets of last epoch's indices)."""
    w0 = history[0]
    top = max(w0)
    up, low = [top] * len(w0), [-top] * len(w0)
    n = {k: [0] * len(w0) for k in ("up", "low", "dec")}
    d = {k: [0.0] * len(w0) for k in ("up", "low")}
    prev = {"up": set(), "low": set(), "dec": set()}
    prev_mag = [abs(v) for v in w0]
    for w in history[1:]:
        now_up = {i for i, v in enumerate(w) if v >= up[i]}
        now_low = {i for i, v in enumerate(w) if v <= low[i]}
        for key, now, bound in (("up", now_up, up), ("low", now_low, low)):
            for i in range(len(w)):
                if i in now and i in prev[key]:
                    n[key][i] += 1
                    d[key][i] += w[i] - bound[i]
                else:
                    n[key][i], d[key][i] = 0, 0.0
                if n[key][i] >= c:
                    bound[i] += d[key][i] / c
                    n[key][i], d[key][i] = 0, 0.0
            prev[key] = now
        now_dec = {i for i, v in enumerate(w) if abs(v) < prev_mag[i]}
        for i in range(len(w)):
            n["dec"][i] = n["dec"][i] + 1 if (i in now_dec and i in prev["dec"]) else 0
            if n["dec"][i] >= c:
                up[i] *= shrink
                low[i] *= shrink
                n["dec"][i] = 0
        prev["dec"] = now_dec
        prev_mag = [abs(v) for v in w]
    return up, low


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_ranges_match_the_element_wise_oracle(seed):
    gen = torch.Generator().manual_seed(seed)
    drift = torch.randn(64, generator=gen) * 0.15
    w = torch.randn(64, generator=gen) * 0.3
    history = [w.tolist()]
    for _ in range(25):
        w = w + drift + torch.randn(64, generator=gen) * 0.1
        history.append(w.tolist())
    r = SpineRanges(torch.tensor(history[0]), 3, 0.75)
    for step in history[1:]:
        r.update(torch.tensor(step))
    up, low = _oracle(history, 3, 0.75)
    assert r.upper.tolist() == pytest.approx(up, abs=1e-5)
    assert r.lower.tolist() == pytest.approx(low, abs=1e-5)
    assert not torch.allclose(r.upper, torch.full_like(r.upper, max(history[0])))  # moved
