"""Fixtures for the event-data tests."""

from __future__ import annotations

import hashlib

import pytest
import torch

from devprune.data import sources
from tests.data.data_helpers import idx_bytes, tiny_mnist_arrays, write_files


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small tensor ops on a shared 2-core CPU: two intra-op threads only wait on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_mnist_root(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """A data root with a tiny MNIST look-alike whose checksums replace the real ones."""
    files = {stem: idx_bytes(array) for stem, array in tiny_mnist_arrays().items()}
    monkeypatch.setitem(
        sources.CHECKSUMS, "mnist",
        {stem: hashlib.sha256(data).hexdigest() for stem, data in files.items()},
    )
    write_files(tmp_path / "mnist", files)
    return tmp_path
