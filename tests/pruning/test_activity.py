"""ActivityRecorder: which tensors are recorded, multi-step vs per-step calls, when."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from devprune.pruning.activity import ActivityRecorder, post_module_name
from devprune.pruning.importance import trace_readout
from devprune.snn import layers as L
from devprune.structure import discover
from tests.core.models import ChainSNN, StepNeuron


class StepLoopSNN(nn.Module):
    """Single-step layers driven by a Python time loop (the snnTorch convention)."""

    def __init__(self, steps: int = 3) -> None:
        super().__init__()
        self.steps = steps
        self.fc1, self.fc2 = nn.Linear(4, 3), nn.Linear(3, 2)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [self.fc2(self.act(self.fc1(x * (t + 1)))) for t in range(self.steps)]
        return torch.stack(outs).mean(0)


def _record(model: nn.Module, x: torch.Tensor, **kwargs):
    structure = discover(model, x)
    recorder = ActivityRecorder(model, structure, structure.prunable(), **kwargs)
    recorder.start()
    model(x)
    return recorder, recorder.finish()


def test_multi_step_snn_records_layer_input_and_neuron_spikes():
    torch.manual_seed(0)
    model = ChainSNN(time_steps=3)
    seen = {}

    def keep(key, pick):
        def hook(module, inputs, output):
            seen[key] = pick(inputs, output)  # returns None: the output is left alone

        return hook

    model.n3.register_forward_hook(keep("spikes", lambda i, o: o))
    model.f1.register_forward_hook(keep("input", lambda i, o: i[0]))
    _, acts = _record(model, torch.rand(5, 1, 8, 8))
    assert set(acts) == {"c1", "c2", "f1"}  # output layer excluded
    pre, post = acts["f1"]
    assert torch.allclose(post, trace_readout(seen["spikes"]))
    assert torch.allclose(pre, trace_readout(seen["input"]))
    assert acts["c2"][0].shape == (5, 4) and acts["c2"][1].shape == (5, 6)  # channel totals


def test_single_step_calls_accumulate_one_trace_per_batch():
    torch.manual_seed(0)
    model = StepLoopSNN(steps=3)
    x = torch.rand(2, 4)
    outs = torch.stack([model.fc1(x * (t + 1)) for t in range(3)]).detach()
    for readout in ("last", "mean"):
        _, acts = _record(model, x, readout=readout)
        pre, post = acts["fc1"]
        # ANN default: postsynaptic activity = the layer's own (pre-activation) output
        assert torch.allclose(post, trace_readout(outs, 0.5, readout), atol=1e-6)
        inputs = torch.stack([x * (t + 1) for t in range(3)])
        assert torch.allclose(pre, trace_readout(inputs, 0.5, readout), atol=1e-6)


def test_ann_post_activation_option_reads_the_activation():
    model = StepLoopSNN(steps=1)
    structure = discover(model, torch.rand(1, 4))
    fc1 = structure["fc1"]
    assert post_module_name(structure, fc1, "pre") == "fc1"
    assert post_module_name(structure, fc1, "post") == "act"
    x = torch.randn(3, 4)
    _, acts = _record(model, x, ann_activity="post")
    assert torch.allclose(acts["fc1"][1], torch.relu(model.fc1(x)).detach())


def test_nothing_recorded_in_eval_mode_or_outside_a_batch():
    model = ChainSNN()
    x = torch.rand(2, 1, 8, 8)
    recorder, _ = _record(model, x)
    model(x)  # after finish(): not recording
    assert recorder.finish() == {}
    model.eval()
    recorder.start()
    model(x)
    assert recorder.finish() == {}
    recorder.remove()
    assert not model.c1._forward_hooks


def test_recorded_tensors_carry_no_graph():
    model = ChainSNN()
    _, acts = _record(model, torch.rand(2, 1, 8, 8))
    assert all(not t.requires_grad for pair in acts.values() for t in pair)


def test_bad_readout_is_rejected():
    model = nn.Sequential(L.Linear(3, 2), StepNeuron(), L.Linear(2, 2))
    structure = discover(model)
    with pytest.raises(ValueError, match="readout"):
        ActivityRecorder(model, structure, structure.prunable(), readout="peak")
