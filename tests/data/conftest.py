"""Fixtures for the data-layer tests."""

from __future__ import annotations

import hashlib

import pytest
import torch

from devprune.data import sources
from devprune.data.sources import IDX_STEMS
from tests.data.data_helpers import idx_bytes, tiny_mnist_arrays


@pytest.fixture
def tiny_mnist(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Raw IDX bytes of a tiny MNIST look-alike; its SHA-256s replace the real table."""
    files = {stem: idx_bytes(array) for stem, array in tiny_mnist_arrays().items()}
    monkeypatch.setitem(
        sources.CHECKSUMS, "mnist",
        {stem: hashlib.sha256(data).hexdigest() for stem, data in files.items()},
    )
    assert set(files) == set(IDX_STEMS)
    return files


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Data tests run tiny tensor ops; on a shared, oversubscribed CPU two intra-op threads
    wait on each other (measured: 0.1 ms -> 115 ms per batch), so use one and restore it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
