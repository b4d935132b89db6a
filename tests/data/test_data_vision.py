"""Image datasets: IDX-backed MNIST, CIFAR pickles, splits, normalisation, augmentation."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from devprune.data import get_dataset
from devprune.data.splits import train_val_indices
from devprune.data.transforms import Normalize, RandomCrop, RandomHorizontalFlip
from devprune.data.vision import STATS
from devprune.errors import ConfigError, DataError
from tests.data.data_helpers import cifar_batch, tiny_mnist_arrays, write_cifar_pickle, write_files


@pytest.fixture
def mnist_root(tmp_path, tiny_mnist):
    write_files(tmp_path / "mnist", tiny_mnist)
    return tmp_path


def write_cifar10(root, per_batch=4, test=6):
    folder = root / "cifar10" / "cifar-10-batches-py"
    batches = [cifar_batch(per_batch, 10, b"labels", offset=i * per_batch) for i in range(5)]
    for i, batch in enumerate(batches, 1):
        write_cifar_pickle(folder / f"data_batch_{i}", batch)
    write_cifar_pickle(folder / "test_batch", cifar_batch(test, 10, b"labels", offset=100))
    return batches


def write_cifar100(root, train=12, test=5):
    folder = root / "cifar-100-python"  # the archive extracted straight into the root
    batch = cifar_batch(train, 100, b"fine_labels", offset=0)
    write_cifar_pickle(folder / "train", batch)
    write_cifar_pickle(folder / "test", cifar_batch(test, 100, b"fine_labels", offset=50))
    return batch


# ------------------------------------------------------------------------------ MNIST
def test_mnist_splits_from_idx_files(mnist_root):
    arrays = tiny_mnist_arrays()
    train = get_dataset("mnist", "train", mnist_root, val_fraction=0.25, normalize=False)
    val = get_dataset("mnist", "val", mnist_root, val_fraction=0.25, normalize=False)
    test = get_dataset("mnist", "test", mnist_root, normalize=False)
    assert (len(train), len(val), len(test)) == (30, 10, 15)
    x, y = train[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and isinstance(y, int)
    # val + train are exactly the official training set, image and label together
    all_images = torch.cat([train.inputs, val.inputs]).flatten(1)
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"]).flatten(1)
    assert sorted(map(bytes, all_images.numpy())) == sorted(map(bytes, expected.numpy()))
    np.testing.assert_array_equal(test.inputs[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    assert test.targets.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_mnist_normalisation_uses_the_published_stats(mnist_root):
    raw = get_dataset("mnist", "test", mnist_root, normalize=False)
    normed = get_dataset("mnist", "test", mnist_root)
    mean, std = STATS["mnist"]
    torch.testing.assert_close(normed[3][0], (raw[3][0] - mean[0]) / std[0])
    assert raw[3][0].min() >= 0 and raw[3][0].max() <= 1


def test_mnist_has_no_augmentation_by_default_even_when_asked(mnist_root):
    train = get_dataset("mnist", "train", mnist_root, augment=True)
    assert train.augment is None  # the reference trains MNIST without augmentation
    crop = RandomCrop(28, padding=2)
    assert get_dataset("mnist", "train", mnist_root, augment=crop).augment is crop


def test_missing_mnist_says_how_to_fetch(tmp_path):
    with pytest.raises(DataError, match=f"devprune data fetch mnist --root {tmp_path}"):
        get_dataset("mnist", "train", tmp_path)


# ------------------------------------------------------------------------------ CIFAR
def test_cifar10_reads_the_official_batches(tmp_path):
    batches = write_cifar10(tmp_path)
    train = get_dataset("cifar10", "train", tmp_path, val_fraction=0.0, normalize=False)
    test = get_dataset("cifar10", "test", tmp_path)
    assert len(train) == 20 and len(test) == 6
    assert train.info.in_shape == (3, 32, 32) and train.info.num_classes == 10
    # row layout of the official files: 1024 red, then 1024 green, then 1024 blue values
    first = batches[0][b"data"][0]
    order = train_val_indices(20, 0.0, 0)[0]
    position = int((order == 0).nonzero())
    image = train.inputs[position]
    assert image[1, 0, 0] == first[1024] and image[2, 31, 31] == first[3071]
    assert train.targets[position] == batches[0][b"labels"][0]
    assert sorted(train.targets.tolist()) == sorted(
        label for batch in batches for label in batch[b"labels"])


def test_cifar100_fine_labels_and_flat_layout(tmp_path):
    batch = write_cifar100(tmp_path)
    train = get_dataset("cifar100", "train", tmp_path, val_fraction=0.0)
    assert train.info.num_classes == 100
    assert sorted(train.targets.tolist()) == sorted(batch[b"fine_labels"])
    assert len(get_dataset("cifar100", "test", tmp_path)) == 5


def test_cifar_training_split_is_augmented_evaluation_splits_are_not(tmp_path):
    write_cifar10(tmp_path)
    train = get_dataset("cifar10", "train", tmp_path, augment=True)
    assert train.augment is not None
    assert get_dataset("cifar10", "val", tmp_path, augment=True).augment is None
    assert get_dataset("cifar10", "test", tmp_path, augment=True).augment is None
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    idx = torch.arange(len(train))
    a, _ = train.batch(idx, g1)
    b, _ = train.batch(idx, g2)
    plain, _ = train.batch(idx, augment=False)
    torch.testing.assert_close(a, b)  # seeded
    assert not torch.equal(a, plain)


def test_missing_cifar_folder_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError) as err:
        get_dataset("cifar10", "train", tmp_path)
    message = str(err.value)
    assert str(tmp_path / "cifar10" / "cifar-10-batches-py") in message
    assert "cifar-10-python.tar.gz" in message and "cs.toronto.edu" in message


def test_cifar_pickle_with_foreign_globals_is_refused_not_executed(tmp_path):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(pickle.dumps({b"data": Exploit()}, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_3.*refusing to load global posix\.system"):
        get_dataset("cifar10", "train", tmp_path)
    assert not marker.exists()


def test_cifar_batch_with_wrong_shape_is_a_data_error(tmp_path):
    write_cifar10(tmp_path)
    bad = cifar_batch(4, 10, b"labels", offset=0)
    bad[b"data"] = bad[b"data"][:, :100]
    write_cifar_pickle(tmp_path / "cifar10" / "cifar-10-batches-py" / "test_batch", bad)
    with pytest.raises(DataError, match=r"test_batch: b'data' is uint8 \(4, 100\)"):
        get_dataset("cifar10", "test", tmp_path)


# ------------------------------------------------------------------------------ splits
def test_split_is_deterministic_disjoint_and_covering():
    train, val = train_val_indices(1000, 0.1, seed=3)
    again_train, again_val = train_val_indices(1000, 0.1, seed=3)
    _, other_val = train_val_indices(1000, 0.1, seed=4)
    assert torch.equal(train, again_train) and torch.equal(val, again_val)
    assert not torch.equal(val, other_val)
    assert len(val) == 100 and len(train) == 900
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(1000))


def test_limit_takes_a_seeded_prefix_and_split_args_are_checked():
    full = get_dataset("synthetic", "train", seed=5)
    limited = get_dataset("synthetic", "train", seed=5, limit=50)
    assert len(limited) == 50
    assert torch.equal(limited.inputs, full.inputs[:50])
    with pytest.raises(ConfigError, match="split='dev'"):
        get_dataset("synthetic", "dev")
    with pytest.raises(ConfigError, match="val_fraction"):
        get_dataset("synthetic", "val", val_fraction=0.0)
    with pytest.raises(ConfigError, match="limit"):
        get_dataset("synthetic", "train", limit=0)


# ------------------------------------------------------------------------- transforms
def test_random_crop_returns_windows_of_the_padded_images():
    batch = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8)
    out = RandomCrop(8, padding=2)(batch, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(batch, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, y:y + 8, x:x + 8] for y in range(5) for x in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    assert torch.equal(RandomCrop(8, padding=0)(batch), batch)


def test_horizontal_flip_probability_extremes():
    batch = torch.rand(4, 1, 5, 5)
    assert torch.equal(RandomHorizontalFlip(1.0)(batch), batch.flip(-1))
    assert torch.equal(RandomHorizontalFlip(0.0)(batch), batch)


def test_normalize_broadcasts_per_channel():
    batch = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    out = Normalize((0.5, 0.0, 1.0), (0.5, 1.0, 2.0))(batch)
    assert out[:, 0].eq(1.0).all() and out[:, 1].eq(1.0).all() and out[:, 2].eq(0.0).all()
