"""Datasets: fetching and verifying files, loading splits, fast batched iteration.

Importing this package registers the built-in datasets (MNIST, Fashion-MNIST, CIFAR-10/100,
synthetic); other modules add theirs with :func:`register_dataset`.
"""

from devprune.data import events as _events  # noqa: F401  (registers the event datasets)
from devprune.data import synthetic, vision  # noqa: F401  (registers the built-in datasets)
from devprune.data.base import DatasetInfo, InMemoryDataset
from devprune.data.fetcher import fetch, fetchable_datasets, require_files, verify
from devprune.data.loaders import TensorBatchLoader
from devprune.data.paths import default_root
from devprune.data.registry import (
    available_datasets,
    dataset_info,
    get_dataset,
    register_dataset,
)

__all__ = [
    "DatasetInfo",
    "InMemoryDataset",
    "TensorBatchLoader",
    "available_datasets",
    "dataset_info",
    "default_root",
    "fetch",
    "fetchable_datasets",
    "get_dataset",
    "register_dataset",
    "require_files",
    "verify",
]
