"""A model whose time loop lives outside it (snnTorch style) is measured over every step
through ``TimeLoop``, and measuring it bare warns that only one step was seen (defect D8 of
issue 19)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from devprune.measure import TimeLoop, workload_metrics

snn = pytest.importorskip("snntorch")

STEPS = 5


def _step_model() -> nn.Sequential:
    """One time step; neurons keep their state between calls; returns (spk, mem)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), snn.Leaky(beta=0.9, init_hidden=True),
                         nn.Linear(16, 3), snn.Leaky(beta=0.9, init_hidden=True, output=True))


class LoopInside(nn.Module):
    """The same network with the time loop in its forward (the reference for the counts)."""

    def __init__(self, step: nn.Sequential) -> None:
        super().__init__()
        self.fc1, self.fc2 = step[0], step[2]
        self.lif1, self.lif2 = snn.Leaky(beta=0.9), snn.Leaky(beta=0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        out = []
        for t in range(x.shape[1]):
            spk1, mem1 = self.lif1(self.fc1(x[:, t]), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            out.append(spk2)
        return torch.stack(out, dim=1)


def test_a_bare_step_model_warns_that_one_step_was_measured() -> None:
    x = torch.rand(8, 12) * 3
    with pytest.warns(UserWarning, match="one time step per sample.*TimeLoop"):
        workload_metrics(_step_model(), [x])


def test_timeloop_measures_every_step_like_a_model_with_its_loop_inside() -> None:
    step = _step_model()
    torch.manual_seed(1)
    x = torch.rand(8, STEPS, 12) * 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no single-step warning
        looped = workload_metrics(TimeLoop(step), [x, x])
    inside = workload_metrics(LoopInside(step), [x, x])
    assert looped["connections"]["model.0"]["steps_per_sample"] == STEPS
    for key in ("Effective_MACs", "Effective_ACs", "Dense"):
        assert looped["SynapticOperations"][key] == pytest.approx(
            inside["SynapticOperations"][key]), key
    assert looped["FiringRate"] == pytest.approx(inside["FiringRate"])
    # the state is reset per sequence: the second batch counts what the first did
    out = TimeLoop(step)(x)
    assert torch.equal(out, TimeLoop(step)(x)) and out.shape == (8, STEPS, 3)


def test_timeloop_repeats_a_static_input() -> None:
    step = _step_model()
    x = torch.rand(4, 12) * 3
    out = TimeLoop(step, steps=3)(x)
    assert torch.equal(out, TimeLoop(step)(x[:, None].expand(4, 3, 12)))
