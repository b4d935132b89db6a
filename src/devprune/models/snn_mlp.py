"""``snn-mlp``: a quick fully-connected SNN, Flatten - [Linear - neuron] x (hidden + output)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from devprune.errors import ConfigError
from devprune.models.blocks import (
    SpikingClassifier,
    build_encoder,
    make_neuron_factory,
    named,
    spiking_linear_block,
)
from devprune.models.registry import register_model
from devprune.snn import layers as ms


@register_model("snn-mlp")
def snn_mlp(
    *,
    in_shape: tuple[int, ...],
    num_classes: int,
    time_steps: int | None = None,
    hidden: Sequence[int] = (800,),
    encoder: str = "direct",
    neuron: str = "stbp-lif",
    neuron_kwargs: dict[str, Any] | None = None,
    crop: int | tuple[int, int] | None = None,
) -> SpikingClassifier:
    """Quick CPU SNN: Flatten-Linear(in->800)-LIF-Linear(800->classes)-LIF (T default 4)."""
    enc, step_shape = build_encoder(
        in_shape, time_steps, default_steps=4, encoder=encoder, crop=crop, model="snn-mlp"
    )
    sizes = [int(h) for h in hidden]
    if any(h < 1 for h in sizes):
        raise ConfigError(f"snn-mlp: hidden sizes must be positive, got {list(hidden)}.")
    make_neuron = make_neuron_factory(neuron, neuron_kwargs)
    widths = [math.prod(step_shape), *sizes]
    layers = [
        (f"layer{i + 1}", spiking_linear_block(fin, fout, make_neuron))
        for i, (fin, fout) in enumerate(itertools.pairwise(widths))
    ]
    features = named(("flatten", ms.Flatten()), *layers)
    classifier = named(("out", spiking_linear_block(widths[-1], num_classes, make_neuron)))
    return SpikingClassifier(enc, features, classifier)
