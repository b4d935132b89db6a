"""The real MNIST / Fashion-MNIST files (fetched by scripts/test.sh); skipped when absent."""

from __future__ import annotations

import pytest
import torch

from devprune.data import TensorBatchLoader, default_root, get_dataset
from devprune.data.fetcher import is_present

pytestmark = pytest.mark.mnist


def require(name: str) -> None:
    if not is_present(name, default_root()):
        pytest.skip(f"{name} not in {default_root()}; run `devprune data fetch {name}`")


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_files_have_the_official_sizes_and_balanced_labels(name):
    require(name)
    train = get_dataset(name, "train", val_fraction=0.0, normalize=False)
    test = get_dataset(name, "test", normalize=False)
    assert (len(train), len(test)) == (60000, 10000)
    assert train.inputs.dtype == torch.uint8 and train.inputs.shape[1:] == (1, 28, 28)
    for dataset, size in ((train, 60000), (test, 10000)):
        counts = dataset.class_counts()
        assert counts.sum() == size and len(counts) == 10
        # MNIST's rarest digit (5) is 9.0% of the training set, the most common (1) 11.2%;
        # Fashion-MNIST is exactly balanced.
        assert counts.min() >= 0.085 * size and counts.max() <= 0.115 * size


def test_mnist_normalised_statistics_and_split_sizes():
    require("mnist")
    train = get_dataset("mnist", "train")  # val_fraction 0.1
    val = get_dataset("mnist", "val")
    assert (len(train), len(val)) == (54000, 6000)
    x, _ = train.batch(torch.arange(10000))
    assert abs(x.mean().item()) < 0.02 and abs(x.std().item() - 1.0) < 0.02
    batches = list(TensorBatchLoader(val, 1024, shuffle=False))
    assert len(batches) == 6 and batches[-1][0].shape[0] == 6000 - 5 * 1024
