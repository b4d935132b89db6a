"""The chunked frame cache: hits, partial fills, stale keys."""

from __future__ import annotations

import numpy as np

from devprune.data.events.cache import FrameCache


def frames_for(indices, shape=(2, 2, 3, 3)):
    return np.stack([np.full(shape, i, dtype=np.int32) for i in indices])


def test_partial_fills_merge_and_count_hits(tmp_path, monkeypatch):
    monkeypatch.setattr("devprune.data.events.cache.MAX_CHUNK", 4)
    keys = [f"k{i}" for i in range(10)]
    cache = FrameCache(tmp_path, (2, 2, 3, 3))
    assert cache.chunk_size == 4
    cache.store([1, 6], keys, frames_for([1, 6]))
    cache.store([2, 9], keys, frames_for([2, 9]))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "chunk_0000.npz", "chunk_0001.npz", "chunk_0002.npz"]
    fresh = FrameCache(tmp_path, (2, 2, 3, 3))  # a new process: reads the files
    out, found = fresh.load([9, 0, 1, 2, 6], keys)
    assert found.tolist() == [True, False, True, True, True]
    assert out[:, 0, 0, 0, 0].tolist() == [9, 0, 1, 2, 6]
    assert (fresh.hits, fresh.misses) == (4, 1)


def test_entries_whose_key_changed_are_misses(tmp_path):
    cache = FrameCache(tmp_path, (1, 2, 2, 2))
    cache.store([0, 1], ["a", "b"], frames_for([5, 6], (1, 2, 2, 2)))
    # a file was inserted before "b": index 1 now names another sample
    _, found = FrameCache(tmp_path, (1, 2, 2, 2)).load([0, 1, 2], ["a", "new", "b"])
    assert found.tolist() == [True, False, False]


def test_large_counts_survive_the_compact_storage(tmp_path):
    cache = FrameCache(tmp_path, (1, 1, 1, 2))
    frames = np.array([[[[[300, 70000]]]]], dtype=np.int64)
    cache.store([0], ["a"], frames)
    out, _ = FrameCache(tmp_path, (1, 1, 1, 2)).load([0], ["a"])
    assert out.tolist() == frames.tolist()


def test_a_killed_writes_temp_file_is_removed_once_stale(tmp_path):
    import os
    import time

    old = tmp_path / ".chunk_0000.npz.k1ll3d0a.tmp"
    young = tmp_path / ".chunk_0001.npz.wr1t1ng0.tmp"
    mine = tmp_path / ".notes.txt.abcdefgh.tmp"
    for path in (old, young, mine):
        path.write_bytes(b"partial")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    os.utime(mine, (hour_ago, hour_ago))
    cache = FrameCache(tmp_path, (2, 2, 3, 3))
    assert cache.removed_temp == 1
    assert not old.exists() and young.exists() and mine.exists()


def test_a_damaged_chunk_file_is_a_data_error(tmp_path):
    import pytest

    from devprune.errors import DataError

    keys = [f"k{i}" for i in range(3)]
    FrameCache(tmp_path, (2, 2, 3, 3)).store([0, 1], keys, frames_for([0, 1]))
    chunk = tmp_path / "chunk_0000.npz"
    for damaged in (chunk.read_bytes()[:100], b"PK\x03\x04" + b"\0" * 50, b"garbage"):
        chunk.write_bytes(damaged)
        with pytest.raises(DataError, match=r"chunk_0000\.npz is unreadable .*; delete"):
            FrameCache(tmp_path, (2, 2, 3, 3)).load([0], keys)
