"""Dataset registry and the synthetic dataset."""

from __future__ import annotations

import pytest
import torch

from devprune.data import (
    DatasetInfo,
    TensorBatchLoader,
    dataset_info,
    get_dataset,
    register_dataset,
)
from devprune.data.registry import available_datasets
from devprune.data.synthetic import make_synthetic
from devprune.errors import ConfigError


def test_builtin_datasets_and_their_shapes():
    names = set(available_datasets())
    assert {"mnist", "fashion-mnist", "cifar10", "cifar100", "synthetic"} <= names
    assert dataset_info("mnist") == DatasetInfo("mnist", (1, 28, 28), 10, "image")
    assert dataset_info("cifar100").num_classes == 100


def test_unknown_name_suggests_the_closest_and_lists_all():
    with pytest.raises(ConfigError) as err:
        dataset_info("fashion_mnist")
    message = str(err.value)
    assert "did you mean 'fashion-mnist'" in message and "cifar10" in message


def test_unknown_factory_option_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"no option 'normalise'.*normalize"):
        get_dataset("synthetic", "train", normalise=False)


def test_third_party_registration_is_generic():
    calls = {}

    def factory(split, root, *, val_fraction, seed, augment, limit, frames=4):
        calls.update(split=split, root=root, frames=frames, limit=limit)
        return [(torch.zeros(frames, 2, 8, 8), 0)]

    info = DatasetInfo("test-events", (4, 2, 8, 8), 2, "events")
    register_dataset("test-events", info, factory)
    register_dataset("test-events", info, factory)  # same factory again: allowed (reload)
    try:
        dataset = get_dataset("test-events", "val", "/somewhere", frames=6, limit=3)
        assert dataset[0][0].shape == (6, 2, 8, 8)
        assert calls["root"].as_posix() == "/somewhere" and calls["limit"] == 3
        with pytest.raises(ConfigError, match="already registered"):
            register_dataset("test-events", info, lambda *a, **k: None)
    finally:
        from devprune.data import registry
        registry._REGISTRY.pop("test-events")


def test_synthetic_data_is_deterministic_balanced_and_class_dependent():
    x1, y1 = make_synthetic(200, shape=(1, 8, 8), num_classes=4, data_seed=7)
    x2, y2 = make_synthetic(200, shape=(1, 8, 8), num_classes=4, data_seed=7)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.dtype == torch.uint8 and torch.bincount(y1).tolist() == [50] * 4
    means = torch.stack([x1[y1 == c].float().mean(0) for c in range(4)])
    assert (means[0] - means[1]).abs().mean() > 10  # classes differ beyond the noise


def test_synthetic_is_learnable_by_a_linear_model():
    torch.manual_seed(0)
    train = get_dataset("synthetic", "train", num_train=600, shape=(1, 16, 16))
    test = get_dataset("synthetic", "test", num_test=200, shape=(1, 16, 16))
    assert train.info.in_shape == (1, 16, 16)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x_test, y_test = test.batch(torch.arange(len(test)))

    def accuracy() -> float:
        with torch.no_grad():
            return (model(x_test).argmax(1) == y_test).float().mean().item()

    curve = [accuracy()]
    loader = TensorBatchLoader(train, 50, shuffle=True)
    for _ in range(3):
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        curve.append(accuracy())
    assert curve[0] < 0.3, curve  # chance is 0.1
    assert curve[-1] > 0.6 and curve[-1] > curve[1], curve
