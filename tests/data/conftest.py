"""Fixtures for the data-layer tests."""

from __future__ import annotations

import hashlib

import pytest

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
