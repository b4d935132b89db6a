"""Spiking substrate: multi-step neurons, surrogate gradients, encoders and time-folding layers.

Layout convention: every module here is *multi-step*; tensors are time-major ``[T, B, ...]``.
"""

from devprune.snn.base import BaseNeuron, is_spiking_neuron
from devprune.snn.encoders import BernoulliEncoder, DirectEncoder, EventFrameEncoder
from devprune.snn.layers import is_multi_step
from devprune.snn.neurons import IF, LIF, PLIF, STBPLIF, MembraneNeuron, build_neuron
from devprune.snn.surrogate import ATan, QGate, Rectangular, Sigmoid, Surrogate, build_surrogate

__all__ = [
    "IF",
    "LIF",
    "PLIF",
    "STBPLIF",
    "ATan",
    "BaseNeuron",
    "BernoulliEncoder",
    "DirectEncoder",
    "EventFrameEncoder",
    "MembraneNeuron",
    "QGate",
    "Rectangular",
    "Sigmoid",
    "Surrogate",
    "build_neuron",
    "build_surrogate",
    "is_multi_step",
    "is_spiking_neuron",
]
