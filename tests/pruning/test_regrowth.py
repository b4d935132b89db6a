"""Regeneration: percentile schedule, persistence counters (strict > C_g), signals, and the
straight-through gradient of a dead unit's synapses under hard masks."""

import numpy as np
import pytest
import torch
from torch import nn

from devprune.pruning.regrowth import (
    DeadUnitGradient,
    RegrowthTracker,
    candidate_signal,
    regrowth_percentile,
)
from devprune.structure import discover


def test_percentile_schedule_rises_from_p0_plus_one_to_the_cap():
    # Reference MNIST FC: p0 = 60, start 37 (= 2C+1 for C = 18).
    assert regrowth_percentile(37, 37, 60, 1.1, 99) == pytest.approx(61.0)
    assert regrowth_percentile(38, 37, 60, 1.1, 99) == pytest.approx(61.1)
    assert regrowth_percentile(40, 37, 65, 1.1, 99) == pytest.approx(65 + 1.1**3)
    # 1.1^k >= 39 from k = 39 on: the FC percentile reaches the cap at epoch 76
    assert regrowth_percentile(75, 37, 60, 1.1, 99) < 99
    assert regrowth_percentile(76, 37, 60, 1.1, 99) == 99
    assert regrowth_percentile(10**6, 37, 60, 1.1, 99) == 99  # no overflow




def test_conv_signal_is_the_signed_kernel_sum_or_its_magnitude():
    w = torch.zeros(2, 1, 2, 2)
    w[0, 0] = torch.tensor([[1.0, -3.0], [0.5, 0.5]])
    assert candidate_signal(w, "weight", kernels=True)[0, 0] == pytest.approx(-1.0)
    assert candidate_signal(w, "magnitude", kernels=True)[0, 0] == pytest.approx(5.0)
    assert candidate_signal(w.flatten(1), "weight", kernels=False).shape == (2, 4)


def test_restore_needs_count_above_max_count_on_consecutive_epochs():
    tracker = RegrowthTracker((1, 4), torch.device("cpu"), 1)
    candidates = torch.tensor([[True, True, False, True]])
    signal = torch.tensor([[5.0, 5.0, 9.0, 0.0]])  # entry 2 is big but not a candidate
    restored = []
    for epoch in range(4):
        if epoch == 2:
            signal = torch.tensor([[5.0, 0.0, 9.0, 0.0]])  # entry 1 drops below once
        restore, threshold = tracker.step(signal, candidates, q=25, max_count=1)
        assert threshold == pytest.approx(float(np.percentile(signal.numpy(), 25)))
        restored.append(restore[0].nonzero().flatten().tolist())
    # entry 0: above at epochs 0..3 -> counts 0,1,2 (>1: restored at epoch 2)
    assert restored == [[], [], [0], []]
    # entry 0 starts from scratch after its restore (still a candidate here): not counted at
    # epoch 3; entry 1 was reset by its one epoch below
    assert tracker.count[0, 0] == 0 and tracker.count[0, 1] == 0


def test_tracker_state_round_trip():
    tracker = RegrowthTracker((3,), torch.device("cpu"), 5)
    tracker.step(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([True, True, True]), 10, 5)
    tracker.step(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([True, True, True]), 10, 5)
    other = RegrowthTracker((3,), torch.device("cpu"), 5)
    other.load_state_dict(tracker.state_dict())
    assert torch.equal(other.count, tracker.count)
    assert torch.equal(other.was_above, tracker.was_above)
    with pytest.raises(ValueError, match="shape"):
        RegrowthTracker((4,), torch.device("cpu"), 5).load_state_dict(tracker.state_dict())


def test_dead_unit_gradient_goes_through_the_saved_outgoing_columns():
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False))
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    structure = discover(model, x)
    dead = DeadUnitGradient(model, structure, [structure["0"]])
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[2.0, 3.0]]))
    dead.save("0", torch.tensor([False, True]), structure)  # unit 1 dies: its column is 3
    with torch.no_grad():
        model[1].weight[:, 1] = 0.0  # hard masks zero it
    dead.active = True
    model(x).sum().backward()  # dL/dy = 1 for each sample
    # (delta @ W_saved)^T @ x: unit 1 gets 3 * (1 + 3), 3 * (2 + 4); live unit 0 nothing
    assert dead.sums["0"].tolist() == [[0.0, 0.0], [12.0, 18.0]]
    assert model[0].weight.grad[1].tolist() == [0.0, 0.0]  # its true gradient is zero
    dead.restore("0", torch.tensor([False, True]), structure)
    assert model[1].weight.tolist() == [[2.0, 3.0]]


def test_dead_unit_gradient_of_an_input_repeated_over_time():
    """A directly encoded input (one step's tensor repeated T times, stride 0): the T
    gradients are summed before the product; the sum is the per-step one."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2, bias=False))
    step = torch.rand(5, 3)
    x = step.expand(3, 5, 3)  # T = 3, B = 5
    structure = discover(model, x)
    dead = DeadUnitGradient(model, structure, [structure["0"]])
    gone = torch.tensor([False, True, False, True])
    dead.save("0", gone, structure)
    with torch.no_grad():
        model[1].weight[:, gone] = 0.0
    dead.active = True
    weights = torch.randn(3, 5, 2)  # a different dL/dy per step
    (model(x) * weights).sum().backward()
    saved = dead.saved["0"]["1"].double()
    expected = sum((weights[t].double() @ saved).T @ step.double() for t in range(3))
    assert torch.allclose(dead.sums["0"].double(), expected, atol=1e-6)
    assert dead.sums["0"][~gone].abs().sum() == 0  # live units get nothing
