"""Building blocks shared by the zoo (timm-style): layer stacks, encoders, shape arithmetic.

Inside SNNs every conv/linear/BN/pool is the multi-step class of :mod:`devprune.snn.layers`
(a real ``nn.Conv2d`` etc. folding T into the batch), every module holding weights is a
child-less leaf, and forwards have no data-dependent Python control flow, so the models
trace with ``torch.fx`` when neurons and child-less modules are leaves.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from devprune.errors import ConfigError
from devprune.snn import layers as ms
from devprune.snn.encoders import BernoulliEncoder, DirectEncoder, EventFrameEncoder
from devprune.snn.neurons import MembraneNeuron, neuron_factory

NeuronFactory = Callable[[], MembraneNeuron]
IMAGE_ENCODERS = ("bernoulli", "direct")


class SpikingClassifier(nn.Module):
    """``encoder -> features -> classifier``; returns output-layer firing rates ``[B, classes]``.

    ``classifier`` must end with a spiking neuron: its spikes ``[T, B, classes]`` are
    averaged over T (the papers' readout: spike count / T).
    """

    is_spiking = True

    def __init__(self, encoder: nn.Module, features: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.features = features
        self.classifier = classifier

    @property
    def time_steps(self) -> int:
        return self.encoder.time_steps

    @time_steps.setter
    def time_steps(self, value: int) -> None:
        self.encoder.time_steps = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.encoder(x))).mean(0)


def named(*pairs: tuple[str, nn.Module]) -> nn.Sequential:
    """``nn.Sequential`` with readable child names (they become structure/metric names)."""
    return nn.Sequential(OrderedDict(pairs))


def make_neuron_factory(neuron: str, neuron_kwargs: dict[str, Any] | None) -> NeuronFactory:
    if neuron_kwargs is not None and not isinstance(neuron_kwargs, dict):
        raise ConfigError(f"neuron_kwargs must be a dict, got {neuron_kwargs!r}.")
    return neuron_factory(neuron, **(neuron_kwargs or {}))


def spiking_conv_block(
    cin: int, cout: int, make_neuron: NeuronFactory, *, bn: bool, stride: int = 1,
    kernel: int = 3, bias: bool | None = None,
) -> nn.Sequential:
    """Multi-step ``conv(k, same padding) [-BN] - neuron``; conv bias off when BN follows."""
    use_bias = (not bn) if bias is None else bias
    conv = ms.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=use_bias)
    parts: list[tuple[str, nn.Module]] = [("conv", conv)]
    if bn:
        parts.append(("bn", ms.BatchNorm2d(cout)))
    parts.append(("spike", make_neuron()))
    return named(*parts)


def spiking_linear_block(fin: int, fout: int, make_neuron: NeuronFactory) -> nn.Sequential:
    return named(("fc", ms.Linear(fin, fout)), ("spike", make_neuron()))


def conv_bn_relu(cin: int, cout: int, *, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return named(
        ("conv", nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)),
        ("bn", nn.BatchNorm2d(cout)),
        ("relu", nn.ReLU(inplace=True)),
    )


def image_shape(in_shape: Sequence[int], model: str) -> tuple[int, int, int]:
    if len(in_shape) != 3:
        raise ConfigError(
            f"model {model!r} needs image input in_shape=(C, H, W); got {tuple(in_shape)}."
        )
    c, h, w = in_shape
    return c, h, w


def after_conv(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def check_positive_size(size: int, model: str, in_shape: Sequence[int]) -> int:
    if size < 1:
        raise ConfigError(
            f"model {model!r}: input in_shape={tuple(in_shape)} is too small for its "
            "down-sampling; use larger inputs."
        )
    return size


def resolve_time_steps(time_steps: int | None, default: int) -> int:
    return default if time_steps is None else time_steps


def build_encoder(
    in_shape: Sequence[int], time_steps: int | None, *, default_steps: int,
    encoder: str, crop: int | tuple[int, int] | None, model: str,
) -> tuple[nn.Module, tuple[int, ...]]:
    """Encoder for ``in_shape`` plus the per-step sample shape it produces.

    Event frames ``(T_in, C, H, W)`` always use :class:`EventFrameEncoder` (``time_steps``
    defaults to all ``T_in`` frames); other inputs (images ``(C, H, W)``, vectors) use
    ``encoder`` (``bernoulli`` or ``direct``).
    """
    if len(in_shape) == 4:
        frames, c, h, w = in_shape
        steps = frames if time_steps is None else time_steps
        if steps > frames:
            raise ConfigError(
                f"model {model!r}: time_steps={steps} exceeds the {frames} event frames per "
                "sample; lower time_steps or build more frames."
            )
        enc = EventFrameEncoder(steps, crop)
        if enc.crop is not None:
            h, w = enc.crop
        return enc, (c, h, w)
    steps = resolve_time_steps(time_steps, default_steps)
    if crop is not None:
        raise ConfigError(f"model {model!r}: crop applies to event frames only; drop it.")
    if encoder == "bernoulli":
        return BernoulliEncoder(steps), tuple(in_shape)
    if encoder == "direct":
        return DirectEncoder(steps), tuple(in_shape)
    raise ConfigError(
        f"model {model!r}: encoder must be one of {IMAGE_ENCODERS} for images, got {encoder!r}."
    )
