"""Surrogate-gradient training really learns: a tiny separable task with every neuron type."""

from __future__ import annotations

import pytest
import torch

from devprune.models import build_model, get_loss


def two_prototype_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two noisy 1x4x4 prototypes in [0, 1] (bright left half vs bright right half)."""
    gen = torch.Generator().manual_seed(seed)
    left = torch.zeros(1, 4, 4)
    left[..., :2] = 0.9
    protos = torch.stack([left, left.flip(-1)])
    labels = torch.randint(0, 2, (n,), generator=gen)
    noise = 0.15 * torch.randn(n, 1, 4, 4, generator=gen)
    return (protos[labels] + noise).clamp(0, 1), labels


@pytest.mark.parametrize(
    ("neuron", "loss_name"),
    [("stbp-lif", "rate_mse"), ("lif", "rate_mse"), ("plif", "rate_mse"), ("if", "rate_mse"),
     ("stbp-lif", "cross_entropy")],
)
def test_snn_mlp_learns_a_separable_task(neuron, loss_name):
    torch.manual_seed(0)
    x, y = two_prototype_data(64, seed=1)
    model = build_model("snn-mlp", in_shape=(1, 4, 4), num_classes=2, time_steps=4,
                        hidden=(32,), neuron=neuron)
    loss_fn = get_loss(loss_name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = loss_fn(model(x), y).item()
    for _ in range(40):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x_test, y_test = two_prototype_data(128, seed=2)
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
        final = loss_fn(model(x), y).item()
    assert final < first
    assert accuracy >= 0.95


def test_snn_small_gradient_step_reduces_loss():
    torch.manual_seed(0)
    x, y = two_prototype_data(32, seed=3)
    x = torch.nn.functional.interpolate(x, size=(8, 8))
    model = build_model("snn-small", in_shape=(1, 8, 8), num_classes=2, time_steps=4,
                        encoder="direct")
    loss_fn = get_loss("rate_mse")
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(25):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < losses[0]
