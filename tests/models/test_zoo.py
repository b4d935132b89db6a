"""Every zoo model: output shape per dataset shape, backward, partial batches, FX tracing."""

from __future__ import annotations

import pytest
import torch
import torch.fx as fx
from torch import nn

from devprune.errors import ConfigError
from devprune.models import build_model, list_models
from devprune.snn.base import is_spiking_neuron

MNIST = ((1, 28, 28), 10)
CIFAR = ((3, 32, 32), 10)
EVENTS = ((3, 2, 32, 32), 10)  # 3 event frames of 2x32x32

# (model, dataset shape, classes, build kwargs, batch); big models only at batch 2, T 2
CASES = [
    ("snn-mlp", *MNIST, {"time_steps": 2}, 3),
    ("snn-mlp", *EVENTS, {}, 3),
    ("snn-small", *MNIST, {"time_steps": 3}, 3),
    ("snn-small", *EVENTS, {}, 2),
    ("snn-small", *CIFAR, {"time_steps": 2}, 2),
]


def case_id(case: tuple) -> str:
    return f"{case[0]}-{'x'.join(map(str, case[1]))}"


class LeafTracer(fx.Tracer):
    """The lead's structure-discovery rule: child-less modules and neurons are leaves."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return not any(True for _ in m.children()) or is_spiking_neuron(m)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_backward_and_partial_batch(case):
    name, in_shape, classes, kwargs, batch = case
    torch.manual_seed(0)
    model = build_model(name, in_shape=in_shape, num_classes=classes, **kwargs)
    x = torch.rand(batch, *in_shape)
    out = model(x)
    assert out.shape == (batch, classes)
    out.square().sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert model(x[:1]).shape == (1, classes)  # a partial last batch of one
    if model.is_spiking:
        assert ((out >= 0) & (out <= 1)).all()


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_fx_traceable_and_equivalent(case):
    name, in_shape, classes, kwargs, batch = case
    model = build_model(name, in_shape=in_shape, num_classes=classes, **kwargs).eval()
    graph = LeafTracer().trace(model)
    traced = fx.GraphModule(model, graph)
    x = torch.rand(batch, *in_shape)
    torch.manual_seed(3)
    expected = model(x)
    torch.manual_seed(3)
    torch.testing.assert_close(traced(x), expected)


def test_spiking_model_contract():
    for name in list_models():
        model = build_model(name, in_shape=(1, 28, 28), num_classes=10)
        first = next(iter(model.named_children()))[0]
        if model.is_spiking:
            assert first == "encoder"
            assert isinstance(model.time_steps, int)
        # every weight-holding module outside neurons is a child-less leaf
        inside_neurons = {id(part) for n in model.modules() if is_spiking_neuron(n)
                          for part in n.modules()}
        for module in model.modules():
            if id(module) in inside_neurons:
                continue
            if any(True for _ in module.parameters(recurse=False)):
                assert not any(True for _ in module.children()), type(module).__name__


def test_paper_defaults():
    small = build_model("snn-small", in_shape=(1, 28, 28), num_classes=10)
    assert small.time_steps == 20
    assert small.classifier.fc1.fc.in_features == 1960
    nmnist = build_model("snn-small", in_shape=(20, 2, 34, 34), num_classes=10, crop=32)
    assert nmnist.time_steps == 20 and nmnist.classifier.fc1.fc.in_features == 2560
    mlp = build_model("snn-mlp", in_shape=(1, 28, 28), num_classes=10, hidden=(100, 50))
    assert [m.out_features for m in mlp.modules() if isinstance(m, nn.Linear)] == [100, 50, 10]


def test_time_steps_can_be_changed_after_build():
    model = build_model("snn-mlp", in_shape=(1, 8, 8), num_classes=4, time_steps=2)
    model.time_steps = 5
    assert model.encoder.time_steps == 5 and model(torch.rand(2, 1, 8, 8)).shape == (2, 4)


@pytest.mark.parametrize(
    ("name", "kwargs", "field"),
    [
        ("no-such-model", {}, "model"),
        ("snn-small", {"in_shape": (784,)}, "in_shape"),
        ("snn-small", {"bogus": 1}, "bogus"),
        ("snn-small", {"in_shape": (3, 2, 32, 32), "time_steps": 9}, "time_steps"),
        ("snn-small", {"encoder": "poisson"}, "encoder"),
        ("snn-mlp", {"neuron": "hh"}, "neuron"),
        ("snn-mlp", {"num_classes": 0}, "num_classes"),
    ],
)
def test_bad_build_arguments_name_the_field(name, kwargs, field):
    args = {"in_shape": (1, 28, 28), "num_classes": 10, **kwargs}
    with pytest.raises(ConfigError, match=field):
        build_model(name, **args)
