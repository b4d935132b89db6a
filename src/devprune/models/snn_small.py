"""``snn-small``: the small reference SNN of the DPAP / SD-SNN MNIST, N-MNIST and DVS code.

conv3x3(C->15)-LIF-AvgPool2-conv3x3(15->40)-LIF-AvgPool2-FC(40*H/4*W/4->300)-LIF-FC(300->k)-LIF,
convolutions and linears with bias, no BatchNorm, STBP LIF (decay 0.2, V_th 0.5, rectangular
surrogate). Images are Bernoulli rate-coded (T default 20); event frames are fed one frame
per step (``crop=32`` reproduces N-MNIST's 34->32 border drop).
"""

from __future__ import annotations

from typing import Any

from devprune.models.blocks import (
    SpikingClassifier,
    build_encoder,
    check_positive_size,
    image_shape,
    make_neuron_factory,
    named,
    spiking_conv_block,
    spiking_linear_block,
)
from devprune.models.registry import register_model
from devprune.snn import layers as ms


@register_model("snn-small")
def snn_small(
    *,
    in_shape: tuple[int, ...],
    num_classes: int,
    time_steps: int | None = None,
    channels: tuple[int, int] = (15, 40),
    hidden: int = 300,
    encoder: str = "bernoulli",
    neuron: str = "stbp-lif",
    neuron_kwargs: dict[str, Any] | None = None,
    crop: int | tuple[int, int] | None = None,
) -> SpikingClassifier:
    """Reference small SNN 15C3-AP2-40C3-AP2-300-k, STBP LIF, Bernoulli/event input, T=20."""
    enc, step_shape = build_encoder(
        in_shape, time_steps, default_steps=20, encoder=encoder, crop=crop, model="snn-small"
    )
    c, h, w = image_shape(step_shape, "snn-small")
    make_neuron = make_neuron_factory(neuron, neuron_kwargs)
    c1, c2 = channels
    features = named(
        ("conv1", spiking_conv_block(c, c1, make_neuron, bn=False)),
        ("pool1", ms.AvgPool2d(2)),
        ("conv2", spiking_conv_block(c1, c2, make_neuron, bn=False)),
        ("pool2", ms.AvgPool2d(2)),
        ("flatten", ms.Flatten()),
    )
    h4 = check_positive_size(h // 4, "snn-small", in_shape)
    w4 = check_positive_size(w // 4, "snn-small", in_shape)
    classifier = named(
        ("fc1", spiking_linear_block(c2 * h4 * w4, hidden, make_neuron)),
        ("out", spiking_linear_block(hidden, num_classes, make_neuron)),
    )
    return SpikingClassifier(enc, features, classifier)
