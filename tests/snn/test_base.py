from __future__ import annotations

import pytest
from torch import nn

from devprune.snn.base import is_spiking_neuron
from devprune.snn.neurons import LIF


def test_devprune_neurons_are_recognised_and_plain_layers_are_not():
    assert is_spiking_neuron(LIF())
    assert not is_spiking_neuron(nn.ReLU()) and not is_spiking_neuron(nn.Linear(2, 2))


def test_snntorch_neurons_are_recognised_by_class_name():
    snn = pytest.importorskip("snntorch")
    assert is_spiking_neuron(snn.Leaky(beta=0.5))
