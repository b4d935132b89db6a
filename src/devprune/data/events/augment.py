"""Batched augmentations of event frames ``[B, T, C, H, W]`` in torch.

One random draw per sample, shared by all its frames (a crop or rotation of the scene, not
of each time step), as torchvision transforms applied to a ``[T, C, H, W]`` tensor do in the
reference DVS-Gesture recipe: ``RandomCrop(128, padding=16)`` then ``RandomRotation(5)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from devprune.data.base import BatchTransform
from devprune.data.transforms import Compose, RandomCrop


def _fold_frames(batch: Tensor) -> Tensor:
    """``[B, T, C, H, W] -> [B, T*C, H, W]`` so image transforms treat all frames alike."""
    return batch.flatten(1, 2)


class FramesRandomCrop:
    """Zero-pad every frame by ``padding`` and cut one random ``size`` window per sample."""

    def __init__(self, size: int, padding: int) -> None:
        self.crop = RandomCrop(size, padding)

    def __call__(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        b, t, c = batch.shape[:3]
        out = self.crop(_fold_frames(batch), generator)
        return out.reshape(b, t, c, *out.shape[-2:])

    def __repr__(self) -> str:
        return f"FramesRandomCrop({self.crop.size}, padding={self.crop.padding})"


class FramesRandomRotation:
    """Rotate each sample by an angle uniform in ``[-degrees, degrees]`` about the centre.

    Nearest-neighbour sampling with zero fill (torchvision's defaults), so event counts stay
    integers; the output is float because ``grid_sample`` is.
    """

    def __init__(self, degrees: float) -> None:
        self.degrees = float(degrees)

    def __call__(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(batch.shape[0], generator=generator).to(batch.device)
        return rotate_frames(batch, (2 * u - 1) * math.radians(self.degrees))

    def __repr__(self) -> str:
        return f"FramesRandomRotation({self.degrees})"


def gesture_augmentation(size: int = 128) -> BatchTransform:
    """The reference DVS-Gesture training augmentation: crop (pad 16) + rotation of 5 deg."""
    return Compose([FramesRandomCrop(size, padding=16 * size // 128), FramesRandomRotation(5)])


def rotate_frames(batch: Tensor, angle: Tensor) -> Tensor:
    """Rotate sample ``i`` of ``[B, T, C, H, W]`` by ``angle[i]`` radians (counter-clockwise
    on screen, y pointing down), nearest-neighbour, zero fill; returns float."""
    b, t, c, h, w = batch.shape
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(angle)
    # affine_grid maps output to input coordinates in [-1, 1]; the h/w factors keep
    # non-square frames rotating by a true angle.
    theta = torch.stack(
        [torch.stack([cos, -sin * h / w, zero], 1), torch.stack([sin * w / h, cos, zero], 1)],
        1,
    )
    folded = _fold_frames(batch).float()
    grid = F.affine_grid(theta, list(folded.shape), align_corners=False)
    out = F.grid_sample(folded, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out.reshape(b, t, c, h, w)
