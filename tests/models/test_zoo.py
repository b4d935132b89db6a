"""Every zoo model: output shape per dataset shape, backward, partial batches, FX tracing."""

from __future__ import annotations

import functools

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
    ("snn-braincog-cifar", *CIFAR, {"time_steps": 2}, 2),
    ("snn-sew-resnet", *CIFAR, {"time_steps": 2}, 2),
    ("snn-sew-resnet", *MNIST, {"time_steps": 2}, 2),
    ("snn-sew-resnet", *EVENTS, {}, 2),
    ("ann-mlp", *MNIST, {}, 3),
    ("ann-lenet-mnist", *MNIST, {}, 3),
    ("ann-vgg16-dpap", *CIFAR, {}, 2),
    ("ann-resnet20", *CIFAR, {}, 3),
    ("ann-resnet20", *MNIST, {}, 2),
    ("ann-resnet56", *CIFAR, {}, 2),
]


def case_id(case: tuple) -> str:
    return f"{case[0]}-{'x'.join(map(str, case[1]))}"


@functools.cache
def built(index: int) -> nn.Module:
    """Each case's model, built once per session (the big ones take seconds to initialise)."""
    name, in_shape, classes, kwargs, _ = CASES[index]
    torch.manual_seed(0)
    return build_model(name, in_shape=in_shape, num_classes=classes, **kwargs)


def case_param(index: int):
    return pytest.param(index, id=case_id(CASES[index]))


ALL_CASES = [case_param(i) for i in range(len(CASES))]


class LeafTracer(fx.Tracer):
    """The lead's structure-discovery rule: child-less modules and neurons are leaves."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return not any(True for _ in m.children()) or is_spiking_neuron(m)


@pytest.mark.parametrize("index", ALL_CASES)
def test_forward_backward_and_partial_batch(index):
    _, in_shape, classes, _, batch = CASES[index]
    model = built(index).train()
    model.zero_grad(set_to_none=True)
    x = torch.rand(batch, *in_shape)
    out = model(x)
    assert out.shape == (batch, classes)
    out.square().sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert model(x[:1]).shape == (1, classes)  # a partial last batch of one
    if model.is_spiking:
        assert ((out >= 0) & (out <= 1)).all()


@pytest.mark.parametrize("index", ALL_CASES)
def test_fx_traceable_and_equivalent(index):
    _, in_shape, _, _, batch = CASES[index]
    model = built(index).eval()
    graph = LeafTracer().trace(model)
    traced = fx.GraphModule(model, graph)
    x = torch.rand(batch, *in_shape)
    torch.manual_seed(3)
    expected = model(x)
    torch.manual_seed(3)
    torch.testing.assert_close(traced(x), expected)


FIRST_CASE_OF_EACH_MODEL = {case[0]: i for i, case in reversed(list(enumerate(CASES)))}


@pytest.mark.parametrize("name", sorted(FIRST_CASE_OF_EACH_MODEL))
def test_model_contract(name):
    model = built(FIRST_CASE_OF_EACH_MODEL[name])
    if model.is_spiking:
        assert next(iter(model.named_children()))[0] == "encoder"
        assert isinstance(model.time_steps, int)
    # every weight-holding module outside the neurons is a child-less leaf
    inside_neurons = {id(part) for n in model.modules() if is_spiking_neuron(n)
                      for part in n.modules()}
    for module in model.modules():
        if id(module) in inside_neurons:
            continue
        if any(True for _ in module.parameters(recurse=False)):
            assert not any(True for _ in module.children()), type(module).__name__


def test_every_registered_model_is_tested():
    assert set(list_models()) == {case[0] for case in CASES}


def test_paper_defaults():
    small = build_model("snn-small", in_shape=(1, 28, 28), num_classes=10)
    assert small.time_steps == 20
    assert small.classifier.fc1.fc.in_features == 1960
    nmnist = build_model("snn-small", in_shape=(20, 2, 34, 34), num_classes=10, crop=32)
    assert nmnist.time_steps == 20 and nmnist.classifier.fc1.fc.in_features == 2560
    braincog = build_model("snn-braincog-cifar", in_shape=(3, 32, 32), num_classes=10)
    assert braincog.time_steps == 8
    assert braincog.classifier.fc_prun.fc.weight.shape == (512, 32768)
    convs = [m for m in braincog.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [128, 128, 256, 256, 512, 512]
    assert all(c.bias is None for c in convs)
    mlp = build_model("snn-mlp", in_shape=(1, 28, 28), num_classes=10, hidden=(100, 50))
    assert [m.out_features for m in mlp.modules() if isinstance(m, nn.Linear)] == [100, 50, 10]


def test_dpap_vgg16_and_lenet_shapes():
    vgg = built(FIRST_CASE_OF_EACH_MODEL["ann-vgg16-dpap"])
    convs = [m for m in vgg.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13 and convs[-1].out_channels == 512
    assert [m.in_features for m in vgg.modules() if isinstance(m, nn.Linear)] == [
        32768, 4096, 4096]
    assert not any(isinstance(m, nn.Dropout) for m in vgg.modules())
    lenet = build_model("ann-lenet-mnist", in_shape=(1, 28, 28), num_classes=10)
    assert lenet.classifier.fc1.in_features == 2450


def test_resnet_depths_and_option_b_shortcuts():
    for depth in (20, 56):
        net = built(FIRST_CASE_OF_EACH_MODEL[f"ann-resnet{depth}"])
        convs = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
        assert len(convs) + 1 == depth  # + the final linear
        shortcuts = [m for m in net.modules() if isinstance(m, nn.Conv2d)
                     and m.kernel_size == (1, 1)]
        assert [s.out_channels for s in shortcuts] == [32, 64]


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
        ("ann-mlp", {"time_steps": 4}, "time_steps"),
        ("ann-lenet-mnist", {"in_shape": (1, 2, 2)}, "too small"),
    ],
)
def test_bad_build_arguments_name_the_field(name, kwargs, field):
    args = {"in_shape": (1, 28, 28), "num_classes": 10, **kwargs}
    with pytest.raises(ConfigError, match=field):
        build_model(name, **args)


def test_user_models_register_and_build(monkeypatch):
    from devprune.models import registry

    monkeypatch.setattr(registry, "_REGISTRY", registry._REGISTRY.copy())

    @registry.register_model("my-net")
    def my_net(*, in_shape, num_classes):
        """A user's one-layer net."""
        return nn.Sequential(nn.Flatten(), nn.Linear(in_shape[0], num_classes))

    assert list_models()["my-net"] == "A user's one-layer net."
    assert build_model("my-net", in_shape=(5,), num_classes=2)(torch.zeros(1, 5)).shape == (1, 2)
    registry.register_model("my-net")(my_net)  # the same builder again: a re-import, allowed
    with pytest.raises(ConfigError, match="already registered"):
        registry.register_model("my-net")(lambda **kw: my_net(**kw))
