"""The saccade DVS simulation and the derived (never N-MNIST) event datasets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devprune.data import dataset_info, get_dataset
from devprune.data.events import derived
from devprune.data.events.derived import derive_frames
from devprune.data.events.dvs_sim import SaccadeConfig, saccade_path, simulate_events
from devprune.data.events.frames import FrameSpec
from devprune.models import build_model


def square_image(size: int = 28, lo: int = 10, hi: int = 18) -> torch.Tensor:
    image = torch.zeros(1, size, size, dtype=torch.uint8)
    image[0, lo:hi, lo:hi] = 255
    return image


def test_saccades_form_a_closed_triangle():
    path = saccade_path(SaccadeConfig(steps_per_saccade=4, amplitude=2.0))
    assert path.shape == (13, 2)
    assert torch.equal(path[0], path[-1])
    assert path[:, 1].max() - path[:, 1].min() == 2.0


def test_a_black_image_gives_no_events_and_a_bright_square_gives_edges_only():
    cfg = SaccadeConfig()
    sample, events = simulate_events(torch.zeros(1, 28, 28), cfg)
    assert len(events) == 0
    sample, events = simulate_events(square_image().float() / 255, cfg)
    assert len(events) > 100 and set(sample.tolist()) == {0}
    on, off = (events["p"] == 1).sum(), (events["p"] == 0).sum()
    assert abs(int(on) - int(off)) < 0.1 * len(events)  # a closed path returns to start
    # The square covers canvas pixels 12..19; its interior never changes, so no events there.
    inner = (events["x"] >= 15) & (events["x"] <= 16) & (events["y"] >= 15) & (events["y"] <= 16)
    assert not inner.any()
    assert np.all(np.diff(events["t"]) >= 0) and events["t"].max() <= 300_000


def test_simulation_is_deterministic_and_per_sample_independent():
    images = torch.cat([square_image(), square_image(lo=4, hi=9)])
    spec = FrameSpec(4)
    both = derive_frames(images, SaccadeConfig(), spec)
    assert both.shape == (2, 4, 2, 32, 32)
    assert np.array_equal(both, derive_frames(images, SaccadeConfig(), spec))
    assert np.array_equal(both[1:], derive_frames(images[1:], SaccadeConfig(), spec))
    assert not np.array_equal(both[0], both[1])


def test_derived_dataset_shape_labels_cache_and_snn_small(tiny_mnist_root, monkeypatch):
    info = dataset_info("mnist-dvs-derived")
    assert info.in_shape == (8, 2, 32, 32) and info.kind == "events"
    train = get_dataset("mnist-dvs-derived", "train", tiny_mnist_root, val_fraction=0.25,
                        limit=6)
    mnist = get_dataset("mnist", "train", tiny_mnist_root, val_fraction=0.25, limit=6)
    assert torch.equal(train.targets, mnist.targets)
    assert train.inputs.shape == (6, 8, 2, 32, 32) and train.inputs.sum() > 0
    cache = tiny_mnist_root / "mnist-dvs-derived" / "frames_cache" / "train"
    assert len(list(cache.rglob("chunk_*.npz"))) == 1

    def no_simulation(*args, **kwargs):
        raise AssertionError("cached frames were simulated again")

    monkeypatch.setattr(derived, "derive_frames", no_simulation)
    again = get_dataset("mnist-dvs-derived", "train", tiny_mnist_root, val_fraction=0.25,
                        limit=4)
    assert torch.equal(again.inputs, train.inputs[:4])

    model = build_model("snn-small", in_shape=train.info.in_shape, num_classes=10)
    x, _ = train.batch(torch.arange(2))
    assert model(x).shape == (2, 10)


def test_derived_dataset_without_mnist_names_the_fetch_command(tmp_path):
    with pytest.raises(Exception, match="devprune data fetch mnist"):
        get_dataset("mnist-dvs-derived", "test", tmp_path)
