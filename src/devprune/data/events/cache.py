"""Disk cache of integrated frames, so a recording is decoded (or simulated) only once.

Samples ``0..N-1`` of one (dataset, split, frame setting) are cached in chunk files of
consecutive samples: ``<folder>/chunk_NNNN.npz`` holds the samples of that range computed so
far (``index``, ``key``, ``frames`` as uint8, or int16 / int32 when counts are larger:
lossless). A handful of compressed files instead of one file per sample keeps both the
first epoch (few fsyncs) and later loads (few opens) fast, and a run on a subset stores only
that subset. The folder name encodes every setting that changes the frames (T, method,
window, down-sampling, size), and each entry keeps its sample key, checked on reading: if
files were added or removed and indices shifted, stale entries are ignored and recomputed.
Files are written atomically (temp file + rename); the temporary file of a write that a kill
interrupted is removed the next time the cache is opened, once it is ``STALE_TEMP_S`` old (a
younger one may be another process's write in progress).
"""

from __future__ import annotations

import contextlib
import re
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np

from devprune.data.events.frames import compact_dtype, widen_to_hold
from devprune.errors import DataError
from devprune.utils.io import atomic_writer

CHUNK_BYTES = 64 * 2**20  # uncompressed uint8 frames per chunk file
MAX_CHUNK = 1000
STALE_TEMP_S = 600.0
_TEMP_CHUNK = re.compile(r"^\.chunk_\d{4}\.npz\.[a-z0-9_]{8}\.tmp$")


def write_npz(handle: IO[bytes], **arrays: np.ndarray) -> None:
    """A standard ``.npz`` (``np.load`` reads it) deflated at level 1: on sparse count frames
    it is about as small as numpy's level-6 ``savez_compressed`` and several times faster."""
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def remove_stale_temp_files(folder: Path, min_age_s: float = STALE_TEMP_S) -> int:
    """Delete chunk temp files an interrupted write left in ``folder``; returns how many."""
    if not folder.is_dir():
        return 0
    now, removed = time.time(), 0
    for path in folder.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if _TEMP_CHUNK.match(path.name) and now - path.stat().st_mtime >= min_age_s:
                path.unlink()
                removed += 1
    return removed


class FrameCache:
    """Chunked frame cache of one (dataset, split, frame setting); counts hits and misses."""

    def __init__(self, folder: Path, sample_shape: tuple[int, ...]) -> None:
        self.folder = Path(folder)
        self.sample_shape = tuple(sample_shape)
        per_sample = int(np.prod(self.sample_shape))
        self.chunk_size = max(1, min(MAX_CHUNK, CHUNK_BYTES // max(per_sample, 1)))
        self.hits = 0
        self.misses = 0
        self.removed_temp = remove_stale_temp_files(self.folder)

    def path(self, chunk: int) -> Path:
        return self.folder / f"chunk_{chunk:04d}.npz"

    def load(self, wanted: Sequence[int], keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Cached frames ``[len(wanted), ...]`` (uint8 unless counts need more) of samples
        ``wanted`` and a mask of the ones found; ``keys[i]`` is sample ``i``'s key (entries
        with another key are stale)."""
        wanted_arr = np.asarray(wanted, dtype=np.int64)
        out = np.zeros((len(wanted_arr), *self.sample_shape), dtype=np.uint8)
        found = np.zeros(len(wanted_arr), dtype=bool)
        for chunk in np.unique(wanted_arr // self.chunk_size):
            index, key, frames = self._read(int(chunk))  # one chunk in memory at a time
            out = widen_to_hold(out, frames)
            row_of = {int(i): r for r, (i, k) in enumerate(zip(index, key, strict=True))
                      if i < len(keys) and k == keys[int(i)]}
            for row in np.nonzero(wanted_arr // self.chunk_size == chunk)[0]:
                cached = row_of.get(int(wanted_arr[row]))
                if cached is not None:
                    out[row], found[row] = frames[cached], True
        self.hits += int(found.sum())
        self.misses += int((~found).sum())
        return out, found

    def store(self, indices: Sequence[int], keys: Sequence[str], frames: np.ndarray) -> None:
        """Add samples ``indices`` (``frames`` aligned with them; ``keys`` of all samples)."""
        indices_arr = np.asarray(indices, dtype=np.int64)
        for chunk in np.unique(indices_arr // self.chunk_size):
            rows = np.nonzero(indices_arr // self.chunk_size == chunk)[0]
            old_index, old_key, old_frames = self._read(int(chunk))
            keep = ~np.isin(old_index, indices_arr[rows])
            new_keys = np.asarray([keys[int(i)] for i in indices_arr[rows]], dtype=str)
            merged = (
                np.concatenate([old_index[keep], indices_arr[rows]]),
                np.concatenate([old_key[keep], new_keys]),
                compact_dtype(np.concatenate([old_frames[keep], frames[rows]])),
            )
            with atomic_writer(self.path(int(chunk)), "wb") as handle:
                write_npz(handle, index=merged[0], key=merged[1], frames=merged[2])

    def _read(self, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        path = self.path(chunk)
        if not path.is_file():
            return (np.zeros(0, np.int64), np.zeros(0, dtype=str),
                    np.zeros((0, *self.sample_shape), np.uint8))
        try:
            with np.load(path) as archive:
                index, key, frames = archive["index"], archive["key"], archive["frames"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            detail = " ".join(str(err).split())[:200]
            raise DataError(f"frame cache file {path} is unreadable ({detail}); delete "
                            f"{self.folder} to rebuild it") from err
        if frames.shape != (len(index), *self.sample_shape) or len(key) != len(index):
            raise DataError(f"frame cache file {path} has frames {frames.shape}, expected "
                            f"({len(index)}, {self.sample_shape}); delete {self.folder}")
        return index, key, frames
