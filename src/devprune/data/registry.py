"""Dataset registry: one name -> (static info, factory building a split).

A factory is called as ``factory(split, root, val_fraction=..., seed=..., augment=...,
limit=..., **options)`` with the arguments already validated and ``root`` resolved to a
``Path``; it returns a ``torch.utils.data.Dataset`` whose ``__getitem__`` gives
``(float tensor, int)`` (an :class:`~devprune.data.base.InMemoryDataset` for the built-in
ones, which :class:`~devprune.data.loaders.TensorBatchLoader` iterates fastest). Use
:func:`devprune.data.splits.select_indices` so every dataset splits the same way.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from torch.utils.data import Dataset

from devprune.data.base import BatchTransform, DatasetInfo
from devprune.data.paths import resolve_root
from devprune.data.splits import check_split_args
from devprune.errors import ConfigError
from devprune.utils.registry import Registry


class DatasetFactory(Protocol):
    def __call__(
        self,
        split: str,
        root: Path,
        *,
        val_fraction: float,
        seed: int,
        augment: bool | BatchTransform,
        limit: int | None,
        **options: Any,
    ) -> Dataset: ...


# Where a dataset lives under a data root and whether its files are there (for `data list`).
Locator = Callable[[Path], tuple[Path, bool]]


@dataclass(frozen=True)
class DatasetEntry:
    info: DatasetInfo
    factory: DatasetFactory
    description: str = ""
    locate: Locator | None = None  # None: generated in memory, nothing on disk


_REGISTRY: Registry[DatasetEntry] = Registry("dataset", lambda entry: entry.factory)


def register_dataset(
    name: str,
    info: DatasetInfo,
    factory: DatasetFactory,
    *,
    description: str = "",
    locate: Locator | None = None,
) -> None:
    """Make ``name`` available to :func:`get_dataset` / :func:`dataset_info`.

    Registering a name twice with a different factory is an error (two modules fighting
    over a name); re-registering the same factory (a module reloaded) is allowed.
    """
    if name != info.name:
        raise ConfigError(f"register_dataset({name!r}): info.name is {info.name!r}; use one name")
    _REGISTRY.add(name, DatasetEntry(info, factory, description, locate))


def available_datasets() -> dict[str, DatasetEntry]:
    """All registered datasets, by name, in registration order."""
    return dict(_REGISTRY)


def dataset_entry(name: str) -> DatasetEntry:
    """The registry entry of ``name``; unknown names raise :class:`ConfigError`."""
    return _REGISTRY.lookup(name)


def dataset_info(name: str) -> DatasetInfo:
    """Static facts (input shape, classes, kind) of dataset ``name``."""
    return dataset_entry(name).info


def get_dataset(
    name: str,
    split: str,
    root: str | os.PathLike | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    augment: bool | BatchTransform = False,
    limit: int | None = None,
    **options: Any,
) -> Dataset:
    """Build ``split`` ("train", "val" or "test") of dataset ``name``.

    train/val are a seeded split of the official training set (``val_fraction`` held out);
    ``augment=True`` turns on the dataset's standard training augmentation (train split only),
    a batch transform (see :mod:`devprune.data.transforms`) replaces it; ``limit`` keeps the
    first ``limit`` samples of the split. ``options`` go to the dataset's factory (e.g.
    ``normalize=False`` for images in [0, 1]).
    """
    entry = dataset_entry(name)
    check_split_args(split, val_fraction, limit)
    _check_options(name, entry.factory, options)
    return entry.factory(
        split,
        resolve_root(root),
        val_fraction=float(val_fraction),
        seed=int(seed),
        augment=augment if callable(augment) else bool(augment),
        limit=limit,
        **options,
    )


_COMMON_ARGS = {"split", "root", "val_fraction", "seed", "augment", "limit"}


def _check_options(name: str, factory: DatasetFactory, options: dict[str, Any]) -> None:
    """Unknown factory options -> ConfigError listing the accepted ones (not a TypeError)."""
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [p for p in params if p not in _COMMON_ARGS]
    unknown = [key for key in options if key not in accepted]
    if unknown:
        raise ConfigError(f"dataset {name!r} has no option {', '.join(map(repr, unknown))}; "
                          f"its options: {', '.join(accepted) or '(none)'}")


