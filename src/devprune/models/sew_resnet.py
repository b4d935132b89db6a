"""``snn-sew-resnet``: a small spike-element-wise (SEW) ResNet with ADD connections.

Stem conv3x3-BN-neuron, then stages of SEW basic blocks
``out = SN(BN(conv(SN(BN(conv(x)))))) + shortcut(x)`` where the shortcut is the identity, or
conv1x1-BN-SN when the shape changes (Fang et al. 2021, ADD variant). Global average
pool, Linear(->k) and an output neuron whose rate is the prediction. The identity adds tie
the channels of a stage together (a real residual group for structured pruning).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from devprune.errors import ConfigError
from devprune.models.blocks import (
    NeuronFactory,
    SpikingClassifier,
    build_encoder,
    image_shape,
    make_neuron_factory,
    named,
    spiking_conv_block,
    spiking_linear_block,
)
from devprune.models.registry import register_model
from devprune.snn import layers as ms


class SEWBlock(nn.Module):
    """Two conv-BN-neuron stages plus an ADD shortcut (spikes + spikes, values 0..2)."""

    def __init__(self, cin: int, cout: int, stride: int, make_neuron: NeuronFactory) -> None:
        super().__init__()
        self.conv1 = spiking_conv_block(cin, cout, make_neuron, bn=True, stride=stride)
        self.conv2 = spiking_conv_block(cout, cout, make_neuron, bn=True)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = spiking_conv_block(cin, cout, make_neuron, bn=True, stride=stride,
                                               kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.conv2(self.conv1(x)) + identity


@register_model("snn-sew-resnet")
def snn_sew_resnet(
    *,
    in_shape: tuple[int, ...],
    num_classes: int,
    time_steps: int | None = None,
    widths: Sequence[int] = (32, 64, 128),
    blocks_per_stage: int = 1,
    encoder: str = "direct",
    neuron: str = "lif",
    neuron_kwargs: dict[str, Any] | None = None,
    crop: int | tuple[int, int] | None = None,
) -> SpikingClassifier:
    """Small spiking SEW ResNet (ADD shortcuts), conv-BN-LIF, stages 32-64-128, T=4."""
    if blocks_per_stage < 1 or not widths:
        raise ConfigError("snn-sew-resnet: blocks_per_stage must be >= 1 and widths non-empty.")
    enc, step_shape = build_encoder(
        in_shape, time_steps, default_steps=4, encoder=encoder, crop=crop,
        model="snn-sew-resnet",
    )
    channels = image_shape(step_shape, "snn-sew-resnet")[0]
    make_neuron = make_neuron_factory(neuron, neuron_kwargs)
    stages: list[tuple[str, nn.Module]] = [
        ("stem", spiking_conv_block(channels, widths[0], make_neuron, bn=True))
    ]
    cin = widths[0]
    for s, width in enumerate(widths):
        for b in range(blocks_per_stage):
            stride = 2 if s > 0 and b == 0 else 1
            stages.append((f"stage{s + 1}_{b + 1}", SEWBlock(cin, width, stride, make_neuron)))
            cin = width
    features = named(*stages, ("pool", ms.AdaptiveAvgPool2d(1)), ("flatten", ms.Flatten()))
    classifier = named(("out", spiking_linear_block(cin, num_classes, make_neuron)))
    return SpikingClassifier(enc, features, classifier)
