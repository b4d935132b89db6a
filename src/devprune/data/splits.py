"""Deterministic train / validation / test selection shared by every dataset factory.

The validation set is held out of the official training set by a seeded permutation, so the
same ``(val_fraction, seed)`` always gives the same split on every machine and torch version
that keeps ``torch.randperm`` stable for a CPU generator.
"""

from __future__ import annotations

import torch
from torch import Tensor

from devprune.data.base import SPLITS
from devprune.errors import ConfigError


def check_split_args(split: str, val_fraction: float, limit: int | None) -> None:
    """Reject a bad ``split`` / ``val_fraction`` / ``limit`` with a message naming the fix."""
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not one of {', '.join(SPLITS)}")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ConfigError(f"val_fraction={val_fraction!r} must be in [0, 1), e.g. 0.1")
    if split == "val" and float(val_fraction) == 0.0:
        raise ConfigError("split='val' needs val_fraction > 0 (e.g. 0.1); it is 0")
    if limit is not None and (not isinstance(limit, int) or limit <= 0):
        raise ConfigError(f"limit={limit!r} must be a positive integer or None (all samples)")


def official_part(split: str) -> str:
    """The official part a split is drawn from: ``"test"`` for test, ``"train"`` for train
    and val (val is held out of the official training set)."""
    return "test" if split == "test" else "train"


def train_val_indices(num_train: int, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Disjoint (train, val) index tensors covering ``range(num_train)``.

    Both are in permutation order, so taking a prefix of either gives a random, class-mixed
    subset (what ``limit`` does).
    """
    generator = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(num_train, generator=generator)
    num_val = round(num_train * float(val_fraction))
    if val_fraction > 0 and num_val == 0:
        num_val = 1  # a requested validation set is never silently empty
    return order[num_val:], order[:num_val]


def select_indices(
    split: str,
    num_samples: int,
    *,
    val_fraction: float,
    seed: int,
    limit: int | None,
) -> Tensor:
    """Indices of ``split`` into its source set: the official training set for train/val
    (``num_samples`` = its size), the official test set for test.

    ``limit`` keeps the first ``limit`` of them: a seeded random subset for train/val, the
    first samples in file order for test (so a limited test set is the same for every seed).
    """
    check_split_args(split, val_fraction, limit)
    if split == "test":
        indices = torch.arange(num_samples)
    else:
        train, val = train_val_indices(num_samples, val_fraction, seed)
        indices = train if split == "train" else val
    return indices[:limit] if limit is not None else indices
