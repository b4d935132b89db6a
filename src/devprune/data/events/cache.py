"""Disk cache of integrated frames, one ``.npz`` per sample, so decoding happens once.

Layout: ``<cache_dir>/<dataset>/<split>/<frame key>/<sample key>.npz`` holding ``frames``
(counts as uint8, or int16 / int32 when larger: lossless) and ``label``. The frame key
encodes everything that changes the frames (T, method, window, down-sampling, crop), so a
different setting never reads stale frames. Files are written atomically (temp file +
rename): a killed run leaves no half-written entry, and concurrent writers of the same
entry both leave a valid file.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from devprune.data.events.frames import compact_dtype
from devprune.errors import DataError
from devprune.utils.io import atomic_writer

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class FrameCache:
    """Per-sample frame files for one (dataset, split, frame setting); counts hits/misses."""

    def __init__(self, cache_dir: Path, dataset: str, split: str, frame_key: str) -> None:
        self.folder = Path(cache_dir) / dataset / split / frame_key
        self.hits = 0
        self.misses = 0

    def path(self, sample_key: str) -> Path:
        # Keys contain '/' (class folders); flatten them into one safe file name.
        return self.folder / f"{_UNSAFE.sub('_', sample_key.replace('/', '__'))}.npz"

    def get(self, sample_key: str) -> np.ndarray | None:
        """The cached frames of ``sample_key``, or None (counted as a miss)."""
        path = self.path(sample_key)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            with np.load(path) as archive:
                frames = archive["frames"]
        except (OSError, ValueError, KeyError) as err:
            raise DataError(
                f"frame cache entry {path} is unreadable ({err}); delete {self.folder} "
                "to rebuild it"
            ) from err
        self.hits += 1
        return frames

    def put(self, sample_key: str, frames: np.ndarray, label: int) -> None:
        with atomic_writer(self.path(sample_key), "wb") as handle:
            np.savez_compressed(handle, frames=compact_dtype(frames), label=np.int64(label))
