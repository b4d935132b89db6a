"""ANN zoo: ``ann-mlp``, ``ann-lenet-mnist`` and ``ann-vgg16-dpap`` (return logits).

``ann-vgg16-dpap`` is the NON-STANDARD VGG16-BN of the DPAP ``dnn/`` code: 13 conv3x3-BN-ReLU
with only two max-pools (cfg 64,64,128,128,M,256,256,256,512,M,512,512,512,512,512) and a
classifier ->4096-ReLU-4096-ReLU-k without dropout (32768 inputs on CIFAR).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from devprune.errors import ConfigError
from devprune.models.blocks import (
    after_conv,
    check_positive_size,
    conv_bn_relu,
    image_shape,
    named,
)
from devprune.models.registry import register_model

DPAP_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, 128, 128, "M", 256, 256, 256, 512, "M", 512, 512, 512, 512, 512,
)


class ImageClassifier(nn.Module):
    """``features -> flatten -> classifier`` returning logits."""

    is_spiking = False

    def __init__(self, features: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.flatten = nn.Flatten()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))


def mlp_head(widths: Sequence[int]) -> nn.Sequential:
    """Linear-ReLU stack over ``widths``, no ReLU after the last (logits)."""
    parts: list[tuple[str, nn.Module]] = []
    for i, (fin, fout) in enumerate(itertools.pairwise(widths)):
        parts.append((f"fc{i + 1}", nn.Linear(fin, fout)))
        if i < len(widths) - 2:
            parts.append((f"relu{i + 1}", nn.ReLU(inplace=True)))
    return named(*parts)


@register_model("ann-mlp")
def ann_mlp(
    *, in_shape: tuple[int, ...], num_classes: int, hidden: Sequence[int] = (800,)
) -> ImageClassifier:
    """ANN MLP: Flatten-Linear(in->800)-ReLU-Linear(800->classes), configurable hidden sizes."""
    if any(int(h) < 1 for h in hidden):
        raise ConfigError(f"ann-mlp: hidden sizes must be positive, got {list(hidden)}.")
    widths = [math.prod(in_shape), *(int(h) for h in hidden), num_classes]
    return ImageClassifier(nn.Identity(), mlp_head(widths))


@register_model("ann-lenet-mnist")
def ann_lenet_mnist(*, in_shape: tuple[int, ...], num_classes: int) -> ImageClassifier:
    """DPAP MnistNet: conv5x5(->20)-ReLU-MP-conv5x5(20->50)-ReLU-MP-FC(->500)-ReLU-FC(500->k)."""
    c, h, w = image_shape(in_shape, "ann-lenet-mnist")
    features = named(
        ("conv1", nn.Conv2d(c, 20, 5, padding=2)), ("relu1", nn.ReLU(inplace=True)),
        ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(20, 50, 5, padding=2)), ("relu2", nn.ReLU(inplace=True)),
        ("pool2", nn.MaxPool2d(2)),
    )
    h4 = check_positive_size(h // 4, "ann-lenet-mnist", in_shape)
    w4 = check_positive_size(w // 4, "ann-lenet-mnist", in_shape)
    return ImageClassifier(features, mlp_head([50 * h4 * w4, 500, num_classes]))


@register_model("ann-vgg16-dpap")
def ann_vgg16_dpap(
    *, in_shape: tuple[int, ...], num_classes: int, cfg: Sequence[int | str] = DPAP_VGG16_CFG,
    hidden: int = 4096,
) -> ImageClassifier:
    """DPAP's non-standard VGG16-BN (13 conv, 2 max-pools), classifier 4096-4096-k, no dropout."""
    channels, h, w = image_shape(in_shape, "ann-vgg16-dpap")
    layers: list[tuple[str, nn.Module]] = []
    for i, item in enumerate(cfg):
        if item == "M":
            layers.append((f"pool{i}", nn.MaxPool2d(2)))
            h, w = after_conv(h, 2, 2), after_conv(w, 2, 2)
        else:
            layers.append((f"conv{i}", conv_bn_relu(channels, int(item))))
            channels = int(item)
    check_positive_size(min(h, w), "ann-vgg16-dpap", in_shape)
    return ImageClassifier(named(*layers), mlp_head([channels * h * w, hidden, hidden,
                                                     num_classes]))
