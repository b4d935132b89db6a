"""``ann-resnet20`` / ``ann-resnet56``: CIFAR ResNets (He et al. 2016, 6n+2 layers).

Stages of 16-32-64 channels with n basic blocks each. Shortcuts are the identity where the
shape is kept and conv1x1-BN (option B) where it changes, so the identity adds tie the
channels of each stage together: structured pruning must treat them as one residual group.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from devprune.models.ann import ImageClassifier, mlp_head
from devprune.models.blocks import conv_bn_relu, image_shape, named
from devprune.models.registry import register_model


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(cin, cout, stride=stride)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = named(
                ("conv", nn.Conv2d(cin, cout, 1, stride, bias=False)),
                ("bn", nn.BatchNorm2d(cout)),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.relu(self.bn2(self.conv2(self.conv1(x))) + identity)


def cifar_resnet(
    depth: int, in_shape: Sequence[int], num_classes: int, widths: Sequence[int] = (16, 32, 64)
) -> ImageClassifier:
    blocks_per_stage = (depth - 2) // 6
    channels = image_shape(in_shape, f"ann-resnet{depth}")[0]
    layers: list[tuple[str, nn.Module]] = [("stem", conv_bn_relu(channels, widths[0]))]
    cin = widths[0]
    for s, width in enumerate(widths):
        for b in range(blocks_per_stage):
            stride = 2 if s > 0 and b == 0 else 1
            layers.append((f"stage{s + 1}_{b + 1}", BasicBlock(cin, width, stride)))
            cin = width
    layers.append(("pool", nn.AdaptiveAvgPool2d(1)))
    return ImageClassifier(named(*layers), mlp_head([cin, num_classes]))


@register_model("ann-resnet20")
def ann_resnet20(*, in_shape: tuple[int, ...], num_classes: int) -> ImageClassifier:
    """CIFAR ResNet-20 (3x3 basic blocks, 16-32-64, 1x1-conv shortcuts on shape change)."""
    return cifar_resnet(20, in_shape, num_classes)


@register_model("ann-resnet56")
def ann_resnet56(*, in_shape: tuple[int, ...], num_classes: int) -> ImageClassifier:
    """CIFAR ResNet-56 (3x3 basic blocks, 16-32-64, 1x1-conv shortcuts on shape change)."""
    return cifar_resnet(56, in_shape, num_classes)
