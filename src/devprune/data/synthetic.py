"""Synthetic classification images for fast tests and smoke runs (never real data).

Each class has a smooth random prototype image; a sample is its class prototype plus strong
pixel noise, quantised to uint8 like a real image. A linear model learns it within a few
hundred steps, so a smoke training shows accuracy rising well above chance in seconds.
The data is a function of ``data_seed`` only; ``seed`` chooses the train/val split, as for
real datasets.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import Tensor

from devprune.data.base import BatchTransform, DatasetInfo, InMemoryDataset, to_unit_float
from devprune.data.registry import register_dataset
from devprune.data.splits import select_indices
from devprune.data.transforms import Normalize
from devprune.errors import ConfigError

DEFAULTS: dict[str, dict] = {
    "synthetic": {"shape": (1, 28, 28), "num_classes": 10},
    "synthetic-rgb": {"shape": (3, 32, 32), "num_classes": 10},
}


def make_synthetic(
    num_samples: int,
    *,
    shape: tuple[int, ...] = (1, 28, 28),
    num_classes: int = 10,
    noise: float = 0.6,
    data_seed: int = 1234,
    stream: int = 0,
) -> tuple[Tensor, Tensor]:
    """``uint8 [N, *shape]`` images and balanced ``int64 [N]`` labels.

    Prototypes depend on ``data_seed`` only; ``stream`` selects an independent draw of
    samples from the same classes (0 = training set, 1 = test set).
    """
    _check(shape, num_classes, num_samples, noise)
    prototypes = _prototypes(tuple(shape), num_classes, data_seed)
    generator = torch.Generator().manual_seed(data_seed * 7 + 1 + stream)
    labels = torch.arange(num_samples) % num_classes
    labels = labels[torch.randperm(num_samples, generator=generator)]
    pixels = prototypes[labels] + noise * torch.randn((num_samples, *shape), generator=generator)
    images = (pixels.clamp_(0.0, 1.0) * 255.0).round_().to(torch.uint8)
    return images, labels


def _prototypes(shape: tuple[int, ...], num_classes: int, data_seed: int) -> Tensor:
    # Coarse random patterns, upsampled: spatially smooth like real images, so conv and pooling
    # layers see local structure; contrast in [0.2, 0.8] leaves room for the noise.
    generator = torch.Generator().manual_seed(data_seed)
    channels, *spatial = shape
    coarse_shape = [max(1, s // 4) for s in spatial]
    coarse = torch.rand((num_classes, channels, *coarse_shape), generator=generator)
    if len(spatial) == 2:
        smooth = torch.nn.functional.interpolate(coarse, size=tuple(spatial), mode="bilinear",
                                                 align_corners=False)
    else:  # 1-D or higher-rank samples: nearest-neighbour repeat is enough
        smooth = torch.nn.functional.interpolate(coarse, size=tuple(spatial), mode="nearest")
    return 0.2 + 0.6 * smooth


def _check(shape: tuple[int, ...], num_classes: int, num_samples: int, noise: float) -> None:
    if len(shape) < 2 or any(int(s) < 1 for s in shape):
        raise ConfigError(f"synthetic shape={tuple(shape)} must be (C, H, W) or (C, L), all >= 1")
    if num_classes < 2:
        raise ConfigError(f"synthetic num_classes={num_classes} must be >= 2")
    if num_samples < 1:
        raise ConfigError(f"synthetic num_samples={num_samples} must be >= 1")
    if noise < 0:
        raise ConfigError(f"synthetic noise={noise} must be >= 0")


@functools.lru_cache(maxsize=16)
def _cached(num: int, shape: tuple[int, ...], classes: int, noise: float, data_seed: int,
            stream: int) -> tuple[Tensor, Tensor]:
    return make_synthetic(num, shape=shape, num_classes=classes, noise=noise,
                          data_seed=data_seed, stream=stream)


def _factory(name: str):
    defaults = DEFAULTS[name]

    def factory(
        split: str,
        root: Path,
        *,
        val_fraction: float,
        seed: int,
        augment: bool | BatchTransform,
        limit: int | None,
        shape: tuple[int, ...] = defaults["shape"],
        num_classes: int = defaults["num_classes"],
        num_train: int = 2000,
        num_test: int = 500,
        noise: float = 0.6,
        data_seed: int = 1234,
        normalize: bool = True,
    ) -> InMemoryDataset:
        shape = tuple(int(s) for s in shape)
        is_test = split == "test"
        images, labels = _cached(num_test if is_test else num_train, shape, int(num_classes),
                                 float(noise), int(data_seed), int(is_test))
        indices = select_indices(split, images.shape[0], val_fraction=val_fraction, seed=seed,
                                 limit=limit)
        channels = shape[0]
        prepare = Normalize((0.5,) * channels, (0.3,) * channels) if normalize else to_unit_float
        return InMemoryDataset(
            images.index_select(0, indices),
            labels.index_select(0, indices),
            info=DatasetInfo(name, shape, int(num_classes), "image"),
            split=split,
            prepare=prepare,
            augment=augment if callable(augment) and split == "train" else None,
        )

    return factory


for _name, _spec in DEFAULTS.items():
    register_dataset(
        _name,
        DatasetInfo(_name, _spec["shape"], _spec["num_classes"], "image"),
        _factory(_name),
        description=f"synthetic prototype+noise images {_spec['shape']}, "
        f"{_spec['num_classes']} classes, generated in memory (tests and smoke runs only)",
    )
