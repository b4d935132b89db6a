"""Batch transforms written in torch (torchvision is not usable beside this torch build).

Random transforms act on a whole batch ``[B, C, H, W]`` at once, drawing one set of
parameters per sample from the generator they are given, so they cost a few tensor ops per
batch instead of a Python loop per sample, and a seeded loader reproduces them exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from devprune.data.base import BatchTransform, to_unit_float


def _rand(size: int, generator: torch.Generator | None) -> Tensor:
    # Parameters are drawn on the CPU (generators are per-device) and moved afterwards.
    return torch.rand(size, generator=generator)


def _randint(high: int, size: int, generator: torch.Generator | None) -> Tensor:
    return torch.randint(0, high, (size,), generator=generator)


class Normalize:
    """uint8 (or float in [0, 1]) batch -> ``(x - mean) / std`` per channel, float32."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)

    def __call__(self, batch: Tensor) -> Tensor:
        """``batch`` is ``[B, C, ...]``; the statistics broadcast over the trailing dims."""
        x = to_unit_float(batch)
        per_channel = (-1,) + (1,) * (x.dim() - 2)
        mean = self.mean.to(x.device).view(per_channel)
        std = self.std.to(x.device).view(per_channel)
        if batch.dtype == torch.uint8:  # x is a fresh tensor: normalise in place
            return x.sub_(mean).div_(std)
        return (x - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomCrop:
    """Pad each image by ``padding`` zeros and cut a random ``size`` x ``size`` window."""

    def __init__(self, size: int, padding: int) -> None:
        self.size, self.padding = int(size), int(padding)

    def __call__(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        b, c, h, w = batch.shape
        p, s = self.padding, self.size
        padded = torch.nn.functional.pad(batch, (p, p, p, p))
        dy = _randint(h + 2 * p - s + 1, b, generator).to(batch.device)
        dx = _randint(w + 2 * p - s + 1, b, generator).to(batch.device)
        offsets = torch.arange(s, device=batch.device)
        # Two gathers (rows, then columns) cut every sample's own window in one pass each;
        # about 1.5x faster here than one advanced-indexing gather (128x3x40x40 uint8).
        rows = (dy[:, None] + offsets).view(b, 1, s, 1).expand(b, c, s, padded.shape[-1])
        cols = (dx[:, None] + offsets).view(b, 1, 1, s).expand(b, c, s, s)
        return padded.gather(2, rows).gather(3, cols)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        flip = (_rand(batch.shape[0], generator) < self.p).to(batch.device)
        return torch.where(flip.view(-1, *([1] * (batch.dim() - 1))), batch.flip(-1), batch)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Compose:
    """Apply batch transforms in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[BatchTransform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        for transform in self.transforms:
            batch = transform(batch, generator)
        return batch

    def __repr__(self) -> str:
        return f"Compose({self.transforms})"
