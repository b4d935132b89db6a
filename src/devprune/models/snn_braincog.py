"""``snn-braincog-cifar``: the deep SNN of the BrainCog DPAP / SD-SNN CIFAR-10 code.

Six conv3x3 (no bias) - BN - PLIF blocks 128-128-MP-256-256-MP-512-512, Flatten,
Linear(->512) - LIF ("fc_prun"), Linear(512->k) - LIF, direct encoding, T = 8. Neurons as
BrainCog actually instantiates them: PLIF with threshold 1.0, learnable leak (tau_init 2)
and learnable ATan alpha in the conv blocks; LIF (tau 2, V_th 0.5, QGate(2)) in the linear
blocks. ``plif_threshold=0.5`` gives the original SpikingNN runs' threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

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

# "M" is a 2x2 max-pool; numbers are conv3x3-BN-PLIF output channels
BRAINCOG_CFG: tuple[int | str, ...] = (128, 128, "M", 256, 256, "M", 512, 512)


@register_model("snn-braincog-cifar")
def snn_braincog_cifar(
    *,
    in_shape: tuple[int, ...],
    num_classes: int,
    time_steps: int | None = None,
    cfg: Sequence[int | str] = BRAINCOG_CFG,
    hidden: int = 512,
    encoder: str = "direct",
    plif_threshold: float = 1.0,
) -> SpikingClassifier:
    """BrainCog CIFAR SNN 128C3-128C3-MP-256C3-256C3-MP-512C3-512C3-FC512-k, BN+PLIF, T=8."""
    enc, step_shape = build_encoder(
        in_shape, time_steps, default_steps=8, encoder=encoder, crop=None,
        model="snn-braincog-cifar",
    )
    channels, h, w = image_shape(step_shape, "snn-braincog-cifar")
    conv_neuron = make_neuron_factory("plif", {"threshold": plif_threshold})
    fc_neuron = make_neuron_factory("lif", None)
    blocks = []
    for i, item in enumerate(cfg):
        if item == "M":
            blocks.append((f"pool{i}", ms.MaxPool2d(2)))
            h, w = h // 2, w // 2
        else:
            blocks.append((f"conv{i}", spiking_conv_block(channels, int(item), conv_neuron,
                                                          bn=True)))
            channels = int(item)
    check_positive_size(min(h, w), "snn-braincog-cifar", in_shape)
    features = named(*blocks, ("flatten", ms.Flatten()))
    classifier = named(
        ("fc_prun", spiking_linear_block(channels * h * w, hidden, fc_neuron)),
        ("fc", spiking_linear_block(hidden, num_classes, fc_neuron)),
    )
    return SpikingClassifier(enc, features, classifier)
