"""Surrogate gradients equal finite differences of their smooth definitions."""

from __future__ import annotations

import pytest
import torch

from devprune.errors import ConfigError
from devprune.snn.surrogate import ATan, QGate, Rectangular, Sigmoid, build_surrogate

# Points away from the kinks of the piecewise definitions (rectangle edges at +-0.5,
# QGate edges at +-0.5 for alpha 2).
POINTS = torch.tensor([-2.0, -0.7, -0.3, -0.05, 0.05, 0.2, 0.45, 0.55, 1.3], dtype=torch.float64)


def finite_difference(fn, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return (fn(x + eps) - fn(x - eps)) / (2 * eps)


@pytest.mark.parametrize(
    "surrogate",
    [Rectangular(0.5), Rectangular(0.25), ATan(2.0), ATan(3.0, learnable=True), Sigmoid(4.0),
     QGate(2.0), QGate(1.0)],
    ids=repr,
)
def test_gradient_matches_smooth_derivative(surrogate):
    x = POINTS.clone().requires_grad_()
    spikes = surrogate(x)
    assert spikes.tolist() == (POINTS > 0).double().tolist()
    spikes.sum().backward()
    with torch.no_grad():
        expected = finite_difference(surrogate.smooth, POINTS)
    torch.testing.assert_close(x.grad, expected, rtol=1e-5, atol=1e-7)


def test_smooth_limits_are_zero_and_one():
    for surrogate in (Rectangular(), ATan(), Sigmoid(), QGate()):
        with torch.no_grad():
            ends = surrogate.smooth(torch.tensor([-1e4, 1e4], dtype=torch.float64))
        torch.testing.assert_close(ends, torch.tensor([0.0, 1.0], dtype=torch.float64),
                                   atol=1e-4, rtol=0)


def test_rectangular_reference_window_has_height_one():
    x = torch.tensor([-0.6, -0.49, 0.0, 0.49, 0.6], requires_grad=True)
    Rectangular(0.5)(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_learnable_atan_alpha_gradient_matches_finite_difference():
    surrogate = ATan(2.0, learnable=True).double()
    x = POINTS.clone()
    surrogate(x).sum().backward()
    eps = 1e-6
    with torch.no_grad():
        base = surrogate.alpha.item()
        surrogate.alpha.fill_(base + eps)
        hi = surrogate.smooth(x).sum()
        surrogate.alpha.fill_(base - eps)
        lo = surrogate.smooth(x).sum()
    assert surrogate.alpha.grad.item() == pytest.approx(((hi - lo) / (2 * eps)).item(), rel=1e-5)


def test_fixed_alpha_is_a_buffer_not_a_parameter():
    assert list(ATan(2.0).parameters()) == []
    assert len(list(ATan(2.0, learnable=True).parameters())) == 1


def test_bad_surrogate_config():
    with pytest.raises(ConfigError, match="alpha"):
        QGate(alpha=0.0)
    with pytest.raises(ConfigError, match="surrogate"):
        build_surrogate("triangle")
    assert isinstance(build_surrogate("atan", alpha=3.0), ATan)
