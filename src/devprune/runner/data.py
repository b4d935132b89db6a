"""The loaders of one run: train / validation / test / measurement subset, from ``data``.

In a data-parallel run (docs/DISTRIBUTED.md) ``data.batch_size`` stays the *global* batch:
each of the ``world_size`` ranks draws ``batch_size / world_size`` samples of every global
batch from the same seeded epoch permutation, so the ranks' batches together are exactly the
single-process batch. Validation and test sets are split over the ranks without repetition
(``data.eval_batch_size`` is per process; it changes no result); the measurement subset is
not split (rank 0 alone measures).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from devprune.data import TensorBatchLoader, dataset_info, get_dataset
from devprune.errors import ConfigError
from devprune.runner.config import DataConfig


@dataclass
class RunData:
    """Datasets and loaders of a run; ``val`` is None when ``data.val_fraction`` is 0."""

    info: Any
    train_set: Any
    test_set: Any
    train: Any
    val: Any
    test: Any
    measure: Any
    example_input: torch.Tensor
    val_size: int = 0
    # Generators whose state a checkpoint must carry. The loaders derive every draw from
    # (seed, epoch), so there are none today; the slot keeps the checkpoint format stable.
    generators: dict[str, torch.Generator] = field(default_factory=dict)

    def start_epoch(self, epoch: int) -> None:
        """Fix shuffling and augmentation of the coming epoch (what makes resume exact)."""
        self.train.set_epoch(epoch)


def load_split(cfg: DataConfig, split: str, limit: int | None) -> Any:
    """The dataset of ``split`` as the run's ``data`` settings load it (first ``limit``)."""
    try:
        return get_dataset(cfg.name, split, cfg.root, val_fraction=cfg.val_fraction,
                           seed=cfg.seed, augment=cfg.augment and split == "train",
                           limit=limit, **cfg.options)
    except TypeError as err:
        raise ConfigError(f"data.options: {err}; remove or rename the key") from err


def per_rank_batch_size(batch_size: int, world_size: int) -> int:
    """The share of the global ``data.batch_size`` each of ``world_size`` ranks trains on."""
    if batch_size % world_size:
        above = batch_size + world_size - batch_size % world_size
        raise ConfigError(
            f"data.batch_size={batch_size} is the global batch, shared by {world_size} "
            f"processes, so it must be divisible by {world_size}; use a multiple of "
            f"{world_size} (e.g. --set data.batch_size={above}) or launch a number of "
            f"processes that divides {batch_size}"
        )
    return batch_size // world_size


@dataclass
class EvalData:
    """What scoring a trained model needs: the test split, its loader and the measurement
    subset's loader (``devprune eval``; training builds them through :func:`build_run_data`)."""

    test_set: Any
    test: Any
    measure: Any


def _loader_device(device: torch.device) -> torch.device | None:
    return device if device.type != "cpu" else None


def _eval_loader(dataset: Any, cfg: DataConfig, device: torch.device, rank: int,
                 world_size: int) -> Any:
    return TensorBatchLoader(dataset, cfg.eval_batch_size, shuffle=False, rank=rank,
                             world_size=world_size, pad=False, device=_loader_device(device))


def build_eval_data(cfg: DataConfig, device: torch.device, measure_subset: int = 1000, *,
                    rank: int = 0, world_size: int = 1) -> EvalData:
    """The test loader (split over ``world_size`` ranks) and the first ``measure_subset`` test
    samples, unsplit (rank 0 alone measures)."""
    test_set = load_split(cfg, "test", cfg.limit_eval)
    subset = test_set.subset(torch.arange(min(measure_subset, len(test_set))))
    return EvalData(
        test_set=test_set, test=_eval_loader(test_set, cfg, device, rank, world_size),
        measure=TensorBatchLoader(subset, cfg.eval_batch_size, shuffle=False,
                                  device=_loader_device(device)))


def build_run_data(cfg: DataConfig, device: torch.device, measure_subset: int = 1000, *,
                   rank: int = 0, world_size: int = 1) -> RunData:
    """Load the splits and wrap them in seeded :class:`devprune.data.TensorBatchLoader`\\ s.

    ``rank`` / ``world_size``: this process's shard of a data-parallel run (see above).
    """
    train_batch = per_rank_batch_size(cfg.batch_size, world_size)
    info = dataset_info(cfg.name)
    train_set = load_split(cfg, "train", cfg.limit_train)
    scoring = build_eval_data(cfg, device, measure_subset, rank=rank, world_size=world_size)
    val_set = load_split(cfg, "val", cfg.limit_eval) if cfg.val_fraction > 0 else None
    example, _ = train_set.batch(torch.arange(min(2, len(train_set))), augment=False)
    return RunData(
        info=info, train_set=train_set, test_set=scoring.test_set,
        train=TensorBatchLoader(train_set, train_batch, shuffle=True, seed=cfg.seed,
                                rank=rank, world_size=world_size,
                                device=_loader_device(device)),
        val=(_eval_loader(val_set, cfg, device, rank, world_size)
             if val_set is not None else None),
        test=scoring.test,
        measure=scoring.measure,
        example_input=example,
        val_size=len(val_set) if val_set is not None else 0,
    )
