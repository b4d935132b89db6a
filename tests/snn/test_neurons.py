"""Neuron dynamics pinned against sequences computed by hand (scalar input over time)."""

from __future__ import annotations

import pytest
import torch

from devprune.errors import ConfigError, LayoutError
from devprune.snn.base import BaseNeuron, is_spiking_neuron
from devprune.snn.neurons import IF, LIF, PLIF, STBPLIF, build_neuron, neuron_factory


def run(neuron: torch.nn.Module, currents: list[float]) -> list[float]:
    x = torch.tensor(currents, dtype=torch.float64).reshape(-1, 1, 1)  # [T, B=1, 1]
    return neuron(x).flatten().tolist()


def test_stbp_lif_hard_reset_sequence():
    # u: 0.3, 0.2*0.3+0.3=0.36, 0.2*0.36+0.6=0.672 (fire, reset), 0.1, 0.2*0.1+0.5=0.52 (fire)
    assert run(STBPLIF(), [0.3, 0.3, 0.6, 0.1, 0.5]) == [0, 0, 1, 0, 1]


def test_stbp_lif_soft_reset_keeps_the_excess():
    # hard: u1=0.9 fires -> 0; u2=0.45 silent.  soft: u1 -> 0.4; u2 = 0.08 + 0.45 = 0.53 fires
    assert run(STBPLIF(reset="hard"), [0.9, 0.45]) == [1, 0]
    assert run(STBPLIF(reset="soft"), [0.9, 0.45]) == [1, 1]


def test_braincog_lif_hard_and_soft():
    # u <- u + (x - u)/2: 0.3, 0.45, 0.525 (fire).  hard: 0 -> 0.5, not > 0.5 (strict)
    # soft: 0.025 -> 0.025 + 0.4875 = 0.5125 fires
    currents = [0.6, 0.6, 0.6, 1.0]
    assert run(LIF(), currents) == [0, 0, 1, 0]
    assert run(LIF(reset="soft"), currents) == [0, 0, 1, 1]


def test_plif_initial_leak_and_threshold_one():
    neuron = PLIF()
    assert torch.sigmoid(neuron.w).item() == pytest.approx(0.5)
    assert neuron.tau == pytest.approx(2.0)
    # u: 0.6, 0.9, 1.05 (fire, reset to 0), 1.0 (not > 1.0)
    assert run(neuron, [1.2, 1.2, 1.2, 2.0]) == [0, 0, 1, 0]
    assert run(PLIF(threshold=0.5), [1.2, 0.0]) == [1, 0]


def test_plif_tau_init_sets_leak():
    assert torch.sigmoid(PLIF(tau_init=4.0).w).item() == pytest.approx(0.25)


def test_if_hard_and_soft():
    assert run(IF(), [0.4, 0.4, 0.4, 0.9]) == [0, 0, 1, 0]
    # soft keeps 0.4 after the first spike, so 0.4 + 0.7 = 1.1 fires again
    assert run(IF(reset="hard"), [1.4, 0.7]) == [1, 0]
    assert run(IF(reset="soft"), [1.4, 0.7]) == [1, 1]


def test_nonzero_v_reset():
    # IF, threshold 1, reset to 0.5: 1.2 fires -> 0.5; 0.5 + 0.6 = 1.1 fires again
    assert run(IF(v_reset=0.5), [1.2, 0.6]) == [1, 1]
    assert run(IF(v_reset=0.0), [1.2, 0.6]) == [1, 0]


def test_stbp_bptt_gradient_through_reset_gate():
    # I = [0.3, 0.4]: u1 = 0.3, s1 = 0 (inside window); u2 = 0.2*u1*(1-s1) + I2 = 0.46.
    # dL/du1 for L = s1 + s2: 1 (s1) + 1 * (du2/du1 = 0.2 + du2/ds1 * ds1/du1 = -0.2*0.3*1)
    x = torch.tensor([0.3, 0.4], dtype=torch.float64).reshape(2, 1, 1).requires_grad_()
    STBPLIF()(x).sum().backward()
    assert x.grad.flatten().tolist() == pytest.approx([1.14, 1.0])
    x.grad = None
    STBPLIF(detach_reset=True)(x).sum().backward()
    assert x.grad.flatten().tolist() == pytest.approx([1.2, 1.0])


def test_spikes_are_exact_binary_and_shape_preserved():
    x = torch.randn(5, 3, 4, 6, 6)
    for name in ("stbp-lif", "lif", "plif", "if"):
        s = build_neuron(name)(x)
        assert s.shape == x.shape and s.dtype == x.dtype
        assert set(s.unique().tolist()) <= {0.0, 1.0}


def test_state_does_not_leak_between_calls():
    neuron = LIF()
    x = torch.rand(4, 2, 8) * 2
    assert torch.equal(neuron(x), neuron(x))


def test_plif_leak_and_alpha_are_learned():
    neuron = PLIF()
    x = (torch.rand(6, 4, 10) * 3).requires_grad_()
    neuron(x).sum().backward()
    assert neuron.w.grad is not None and neuron.w.grad.abs().item() > 0
    assert neuron.surrogate.alpha.grad is not None


def test_neurons_satisfy_contract():
    for name in ("stbp-lif", "lif", "plif", "if"):
        neuron = build_neuron(name)
        assert isinstance(neuron, BaseNeuron) and is_spiking_neuron(neuron)
        assert neuron.step_mode == "m"


def test_single_step_input_is_rejected():
    with pytest.raises(LayoutError, match=r"\[T, B"):
        LIF()(torch.ones(3))


@pytest.mark.parametrize(
    ("name", "kwargs", "field"),
    [
        ("lif", {"reset": "zero"}, "reset"),
        ("lif", {"tau": 0.5}, "tau"),
        ("stbp-lif", {"decay": 1.5}, "decay"),
        ("plif", {"tau_init": 1.0}, "tau_init"),
        ("nope", {}, "neuron"),
        ("lif", {"bogus": 1}, "bogus"),
    ],
)
def test_bad_neuron_config_names_the_field(name, kwargs, field):
    with pytest.raises(ConfigError, match=field):
        build_neuron(name, **kwargs)


def test_factory_gives_independent_learnable_surrogates():
    make = neuron_factory("plif")
    a, b = make(), make()
    assert a.surrogate.alpha is not b.surrogate.alpha
