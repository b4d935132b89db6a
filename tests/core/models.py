"""Tiny models used by the core tests (independent of the zoo)."""

from __future__ import annotations

import torch
from torch import nn

from devprune.snn import layers as L
from devprune.snn.base import BaseNeuron


class StepNeuron(BaseNeuron):
    """Heaviside neuron without state: enough to give the graph a spiking node."""

    def multi_step(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0).to(x.dtype) + (x - x.detach())  # exact 0/1, straight-through grad


class ChainSNN(nn.Module):
    """conv(1->4)-N-pool-conv(4->6)-BN-N-pool-flatten-fc(24->5)-N-fc(5->3)-N on 8x8 input."""

    def __init__(self, time_steps: int = 2) -> None:
        super().__init__()
        self.time_steps = time_steps
        self.c1, self.n1, self.p1 = L.Conv2d(1, 4, 3, padding=1), StepNeuron(), L.AvgPool2d(2)
        self.c2, self.b2 = L.Conv2d(4, 6, 3, padding=1), L.BatchNorm2d(6)
        self.n2, self.p2 = StepNeuron(), L.AvgPool2d(2)
        self.flat = L.Flatten()
        self.f1, self.n3 = L.Linear(6 * 2 * 2, 5), StepNeuron()
        self.f2, self.n4 = L.Linear(5, 3), StepNeuron()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.stack([x] * self.time_steps)
        x = self.p1(self.n1(self.c1(x)))
        x = self.p2(self.n2(self.b2(self.c2(x))))
        x = self.n3(self.f1(self.flat(x)))
        return self.n4(self.f2(x)).mean(0)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class TinyResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.b1, self.b2, self.b3 = BasicBlock(8, 8, 1), BasicBlock(8, 16, 2), BasicBlock(16, 16, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        x = self.b3(self.b2(self.b1(x)))
        return self.fc(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))
