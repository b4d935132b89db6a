"""TensorBatchLoader: batching, partial batches, seeded shuffling per epoch, DDP sharding."""

from __future__ import annotations

import itertools

import pytest
import torch

from devprune.data import DatasetInfo, InMemoryDataset, TensorBatchLoader, get_dataset
from devprune.errors import ConfigError


def numbered(n: int) -> InMemoryDataset:
    """Sample i is a 1x2x2 image filled with i, label i % 3: batches reveal their indices."""
    inputs = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return InMemoryDataset(inputs, torch.arange(n) % 3, info=DatasetInfo("n", (1, 2, 2), 3,
                                                                         "image"), split="train")


def flat(lists: list[list[int]]) -> list[int]:
    return list(itertools.chain.from_iterable(lists))


def seen(loader) -> list[list[int]]:
    return [(x[:, 0, 0, 0] * 255).round().long().tolist() for x, _ in loader]


def test_partial_last_batch_is_kept_by_default():
    loader = TensorBatchLoader(numbered(10), 4, shuffle=False)
    assert len(loader) == 3
    assert seen(loader) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    dropping = TensorBatchLoader(numbered(10), 4, shuffle=False, drop_last=True)
    assert len(dropping) == 2 and [len(b) for b in seen(dropping)] == [4, 4]


def test_batches_are_float_inputs_and_int64_labels():
    x, y = next(iter(TensorBatchLoader(numbered(5), 5, shuffle=False)))
    assert x.dtype == torch.float32 and x.shape == (5, 1, 2, 2)
    assert y.dtype == torch.int64 and y.tolist() == [0, 1, 2, 0, 1]


def test_shuffle_is_reproducible_per_epoch_and_changes_between_epochs():
    a = TensorBatchLoader(numbered(50), 8, shuffle=True, seed=1)
    b = TensorBatchLoader(numbered(50), 8, shuffle=True, seed=1)
    first, second = seen(a), seen(a)  # each pass advances the epoch
    assert first != second
    assert sorted(flat(first)) == list(range(50))
    b.set_epoch(1)
    assert seen(b) == second  # what a resumed run does
    assert seen(TensorBatchLoader(numbered(50), 8, shuffle=True, seed=2)) != first


@pytest.mark.parametrize("n,world", [(10, 3), (12, 4), (7, 2)])
def test_sharding_covers_the_set_with_equal_steps_per_rank(n, world):
    loaders = [TensorBatchLoader(numbered(n), 2, shuffle=True, seed=0, rank=r, world_size=world)
               for r in range(world)]
    for loader in loaders:
        loader.set_epoch(3)
    shards = [flat(seen(loader)) for loader in loaders]
    per_rank = -(-n // world)
    assert all(len(shard) == per_rank for shard in shards)
    assert len({len(loader) for loader in loaders}) == 1  # collectives stay in step
    everything = flat(shards)
    assert sorted(set(everything)) == list(range(n))
    assert len(everything) - n == per_rank * world - n  # only the wrap-around repeats


def test_loader_augmentation_is_seeded_and_can_be_switched_off():
    train = get_dataset("synthetic-rgb", "train", augment=lambda x, g: x.flip(-1),
                        num_train=32, limit=16)
    plain = TensorBatchLoader(train, 16, shuffle=False, augment=False)
    own = TensorBatchLoader(train, 16, shuffle=False)
    x_plain, _ = next(iter(plain))
    x_own, _ = next(iter(own))
    torch.testing.assert_close(x_own, x_plain.flip(-1))


def test_torch_dataloader_gives_the_same_batches():
    dataset = get_dataset("synthetic", "test", limit=20)
    ours = list(TensorBatchLoader(dataset, 8, shuffle=False))
    theirs = list(torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=False))
    assert len(ours) == len(theirs) == 3
    for (x1, y1), (x2, y2) in zip(ours, theirs, strict=True):
        torch.testing.assert_close(x1, x2)
        assert torch.equal(y1, y2)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="batch_size"):
        TensorBatchLoader(numbered(4), 0, shuffle=False)
    with pytest.raises(ConfigError, match="rank=2 / world_size=2"):
        TensorBatchLoader(numbered(4), 2, shuffle=False, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="empty"):
        TensorBatchLoader(numbered(0), 2, shuffle=False)
