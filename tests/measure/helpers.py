"""Small models and a naive reference counter for the measurement tests."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from devprune.snn import layers as ms
from devprune.snn.base import BaseNeuron


class StepNeuron(BaseNeuron):
    """Stateless Heaviside neuron: spikes exactly where the input current is positive."""

    def multi_step(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0).to(x.dtype)


class TimeMajor(nn.Module):
    """``[B, T, ...] -> [T, B, ...]`` (an event-frame style encoder without randomness)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(0, 1)


class Wrap(nn.Module):
    """encoder -> body -> mean over time; returns [B, ...] like the zoo models."""

    def __init__(self, *body: nn.Module) -> None:
        super().__init__()
        self.encoder = TimeMajor()
        self.body = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.encoder(x)).mean(0)


class StepLoop(nn.Module):
    """Single-step version: the same layers called once per time step in a Python loop."""

    def __init__(self, *body: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.body(x[:, t]) for t in range(x.shape[1])]).mean(0)


def naive_conv_ops(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int,
                   dilation: int, groups: int) -> int:
    """Count (non-zero input, non-zero weight) pairs of a zero-padded conv2d by brute force."""
    batch, _, height, width = x.shape
    cout, cin_g, kh, kw = weight.shape
    out_h = (height + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    out_w = (width + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    total = 0
    for n, o, i, j in itertools.product(range(batch), range(cout), range(out_h), range(out_w)):
        group = o // (cout // groups)
        for c, a, b in itertools.product(range(cin_g), range(kh), range(kw)):
            r = i * stride - padding + a * dilation
            s = j * stride - padding + b * dilation
            if 0 <= r < height and 0 <= s < width and weight[o, c, a, b] != 0:
                total += int(x[n, group * cin_g + c, r, s] != 0)
    return total


def conv_with_weights(weight: torch.Tensor, **kwargs: int) -> ms.Conv2d:
    cout, cin_g = weight.shape[:2]
    conv = ms.Conv2d(cin_g * kwargs.get("groups", 1), cout, weight.shape[-1], **kwargs)
    with torch.no_grad():
        conv.weight.copy_(weight)
    return conv
