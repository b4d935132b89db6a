"""The STBP LIF's fused training loop gives the recorded per-step loop's spikes and
gradients bit for bit (devprune.snn.fused)."""

from __future__ import annotations

import pytest
import torch

from devprune.models import build_model
from devprune.snn import native
from devprune.snn.neurons import LIF, PLIF, STBPLIF, MembraneNeuron
from devprune.snn.surrogate import ATan, QGate, Rectangular, Sigmoid

SURROGATES = [Rectangular(0.5), Rectangular(0.3), QGate(2.0), Sigmoid(4.0)]


@pytest.fixture(autouse=True, params=["native", "torch-loops"])
def lif_path(request, monkeypatch):
    """Every test twice: with the compiled kernel (devprune.snn.native) and without it."""
    if request.param == "torch-loops":
        monkeypatch.setattr(native, "supports", lambda x: False)
    elif native.kernels() is None:
        pytest.skip("the native LIF kernel is not built on this machine")
    return request.param


def _recorded(neuron: STBPLIF, x: torch.Tensor) -> torch.Tensor:
    """The per-step loop autograd records (the base class's)."""
    return MembraneNeuron.run_differentiable(neuron, x, neuron.charge)


def _spikes_and_gradient(run, neuron, base, shape, repeated, upstream):
    leaf = base.clone().requires_grad_()
    spikes = run(neuron, leaf.expand(shape) if repeated else leaf)
    spikes.backward(upstream)
    return spikes.detach(), leaf.grad


@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: repr(s))
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("shape, repeated, dtype", [
    ((4, 3, 5), False, torch.float32),
    ((1, 5, 6), False, torch.float32),             # one step: no reset in the graph
    ((8, 7, 3, 4, 4), False, torch.float32),       # conv feature maps
    ((20, 16, 64), False, torch.float64),
    ((4, 6, 10), True, torch.float32),             # a directly encoded input: stride 0 on T
])
def test_spikes_and_input_gradients_equal_the_recorded_loop_bit_for_bit(
        surrogate, detach_reset, shape, repeated, dtype) -> None:
    neuron = STBPLIF(decay=0.2, threshold=0.5, surrogate=surrogate, detach_reset=detach_reset)
    _assert_fused_equals_recorded(neuron, shape, repeated, dtype, len(shape) * 31 + shape[0],
                                  scale=0.6, offset=0.3)


def _assert_fused_equals_recorded(neuron, shape, repeated, dtype, seed, scale, offset) -> None:
    """Spikes and input gradients of the fused loop equal the recorded loop's, and flow."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(shape[1:] if repeated else shape, generator=g, dtype=dtype) * scale
    base += offset
    upstream = torch.randn(shape, generator=g, dtype=dtype)
    fused = _spikes_and_gradient(lambda n, x: n.run_differentiable(x, n.charge), neuron, base,
                                 shape, repeated, upstream)
    recorded = _spikes_and_gradient(_recorded, neuron, base, shape, repeated, upstream)
    assert torch.equal(fused[0], recorded[0])
    assert torch.equal(fused[1], recorded[1])
    assert fused[0].abs().sum() > 0 and fused[1].abs().sum() > 0  # spikes and gradients flow


@pytest.mark.parametrize("threshold", [0.3, 1 / 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_threshold_without_an_exact_float_keeps_the_bits(threshold, dtype) -> None:
    """The fused loop compares with a 0-dim tensor of x's dtype where the recorded loop
    subtracts a Python float: the same rounded value."""
    neuron = STBPLIF(threshold=threshold, surrogate=Sigmoid(4.0))
    g = torch.Generator().manual_seed(1)
    base = torch.randn(6, 8, 50, generator=g, dtype=dtype) * 0.6 + 0.3
    upstream = torch.randn(6, 8, 50, generator=g, dtype=dtype)
    fused = _spikes_and_gradient(lambda n, x: n.run_differentiable(x, n.charge), neuron, base,
                                 base.shape, False, upstream)
    recorded = _spikes_and_gradient(_recorded, neuron, base, base.shape, False, upstream)
    assert torch.equal(fused[0], recorded[0]) and torch.equal(fused[1], recorded[1])


def test_training_forwards_take_the_fused_loop_where_it_applies() -> None:
    x = torch.randn(4, 3, 5, requires_grad=True)
    assert type(STBPLIF()(x).grad_fn).__name__ == "_HardResetLoopBackward"
    assert type(LIF()(x).grad_fn).__name__ == "_HardResetLoopBackward"
    class OwnSpikes(Rectangular):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x - 0.1)

    class OwnReset(STBPLIF):
        def reset(self, u, s, out=None):
            return torch.mul(u, 0.5, out=out)

    class OwnCharge(LIF):
        def charge(self, u, x, out=None):
            return torch.add(u, x, out=out)

    for other in (STBPLIF(surrogate=ATan()), STBPLIF(reset="soft"), STBPLIF(v_reset=0.1),
                  STBPLIF(surrogate=OwnSpikes()), OwnReset(), OwnCharge(), PLIF(),
                  LIF(reset="soft")):
        assert type(other(x).grad_fn).__name__ == "StackBackward0"
    with torch.no_grad():  # inference keeps its own loop
        assert torch.equal(STBPLIF()(x), _recorded(STBPLIF(), x))


def test_a_second_derivative_is_refused_not_wrong() -> None:
    """The fused backward is not itself recorded: differentiating it raises, where the
    recorded loop would give a second derivative."""
    x = torch.randn(4, 3, 5, requires_grad=True)
    weights = torch.randn(4, 3, 5, requires_grad=True)
    (grad,) = torch.autograd.grad((STBPLIF()(x) * weights).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match=r"differentiate twice"):
        grad.sum().backward()


NETWORKS = {  # name: (neuron class, model kwargs, input shape)
    "snn-small": (STBPLIF, {"in_shape": (1, 28, 28), "time_steps": 4}, (8, 1, 28, 28)),
    # BrainCog LIF, QGate, BatchNorm, residual adds
    "snn-sew-resnet": (LIF, {"in_shape": (3, 8, 8), "time_steps": 3, "widths": (8, 16, 16)},
                       (6, 3, 8, 8)),
}


@pytest.mark.parametrize("name", NETWORKS)
def test_a_network_trains_to_the_same_weights_as_with_the_recorded_loop(name,
                                                                       monkeypatch) -> None:
    neuron_class, kwargs, shape = NETWORKS[name]

    def train_three_steps() -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = build_model(name, num_classes=10, **kwargs)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        x, y = torch.rand(shape), torch.randint(0, 10, (shape[0],))
        for _ in range(3):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        return {k: v.clone() for k, v in model.state_dict().items()}

    fused = train_three_steps()
    monkeypatch.setattr(neuron_class, "run_differentiable", MembraneNeuron.run_differentiable)
    recorded = train_three_steps()
    assert all(torch.equal(fused[k], recorded[k]) for k in fused)


@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: repr(s))
@pytest.mark.parametrize("tau", [2.0, 3.0, 1.5, 1.0])  # weight 0.5, 1/3, 2/3, 1: both lerp forms
@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("shape, repeated, dtype", [
    ((4, 3, 5), False, torch.float32),
    ((1, 5, 6), False, torch.float32),
    ((8, 7, 3, 4, 4), False, torch.float64),
    ((4, 6, 10), True, torch.float32),
])
def test_braincog_lif_gives_the_recorded_loops_bits(surrogate, tau, detach_reset, shape,
                                                    repeated, dtype) -> None:
    """The BrainCog-form LIF (lerp charge) takes the same fused loop: du/dr = 1 - 1/tau and
    du/dx = 1/tau as autograd's lerp backward multiplies them."""
    neuron = LIF(tau=tau, threshold=0.5, surrogate=surrogate, detach_reset=detach_reset)
    _assert_fused_equals_recorded(neuron, shape, repeated, dtype, shape[0] * 7 + int(tau * 10),
                                  scale=1.0, offset=0.6)
