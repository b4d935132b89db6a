"""From recordings on disk to a stack of frames: decode, integrate, crop, cache.

A dataset is described by an :class:`EventDatasetSpec` (sensor, classes, how to list its
recordings); :func:`load_frames` builds the frames of any subset of samples, decoding each
file at most once and only when its frames are not cached yet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from devprune.data.events.cache import FrameCache
from devprune.data.events.frames import (
    FrameSpec,
    center_crop,
    compact_dtype,
    integrate_batch,
    widen_to_hold,
)
from devprune.data.events.types import EVENT_DTYPE, RecordingGroup, SensorSize
from devprune.errors import DataError

GroupLister = Callable[[Path, str], list[RecordingGroup]]


@dataclass(frozen=True)
class EventDatasetSpec:
    """Static facts of an on-disk event dataset.

    ``list_groups(folder, split)`` lists the recordings of the official ``"train"`` or
    ``"test"`` split; ``crop`` (height, width) is applied to the frames after integration.
    """

    name: str
    sensor: SensorSize
    num_classes: int
    list_groups: GroupLister
    default_frames: FrameSpec
    crop: tuple[int, int] | None = None

    def frame_shape(self, spec: FrameSpec) -> tuple[int, int, int, int]:
        """``(T, 2, H, W)`` of one sample under ``spec``."""
        height = -(-self.sensor.height // spec.downsample)
        width = -(-self.sensor.width // spec.downsample)
        if self.crop is not None:
            height, width = min(height, self.crop[0]), min(width, self.crop[1])
        return spec.time_steps, 2, height, width

    def cache_key(self, spec: FrameSpec) -> str:
        _, _, height, width = self.frame_shape(spec)
        return f"{spec.key()}-{height}x{width}"


@dataclass(frozen=True)
class SampleRef:
    group: int
    member: int
    key: str
    label: int


def sample_table(groups: Sequence[RecordingGroup]) -> list[SampleRef]:
    """Every sample of ``groups`` in order, with where to find it."""
    return [
        SampleRef(g, m, key, label)
        for g, group in enumerate(groups)
        for m, (key, label) in enumerate(zip(group.keys, group.labels, strict=True))
    ]


def integrate_group(
    dataset: EventDatasetSpec, events_per_sample: Sequence[np.ndarray], spec: FrameSpec
) -> np.ndarray:
    """Frames ``[S, T, 2, H, W]`` (compact integer dtype) of the samples of one recording."""
    lengths = [len(e) for e in events_per_sample]
    sample = np.repeat(np.arange(len(lengths)), lengths)
    events = np.concatenate(list(events_per_sample)) if lengths else np.zeros(0, EVENT_DTYPE)
    frames = integrate_batch(sample, events, len(lengths), dataset.sensor.height,
                             dataset.sensor.width, spec)
    _, _, height, width = dataset.frame_shape(spec)
    return compact_dtype(center_crop(frames, height, width))


def load_frames(
    dataset: EventDatasetSpec,
    groups: Sequence[RecordingGroup],
    wanted: Sequence[int],
    spec: FrameSpec,
    cache: FrameCache | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``[len(wanted), T, 2, H, W]`` (compact integer dtype) and labels of ``wanted``.

    Indices refer to :func:`sample_table` order. Cached samples are read from disk; for the
    others each recording is decoded once and all its samples go into the cache.
    """
    table = sample_table(groups)
    keys = [ref.key for ref in table]
    labels = np.array([table[i].label for i in wanted], dtype=np.int64)
    if cache is None:
        out = np.zeros((len(wanted), *dataset.frame_shape(spec)), dtype=np.uint8)
        found = np.zeros(len(wanted), dtype=bool)
    else:
        out, found = cache.load(wanted, keys)
    first_sample = np.cumsum([0] + [len(g.keys) for g in groups])
    missing: dict[int, list[int]] = {}
    for row in np.nonzero(~found)[0]:
        missing.setdefault(table[wanted[row]].group, []).append(int(row))
    pending = _PendingWrites(cache, keys)
    for group_index, rows in missing.items():
        frames = _integrate(dataset, groups[group_index], spec)
        out = widen_to_hold(out, frames)
        out[rows] = frames[[table[wanted[row]].member for row in rows]]
        # Every sample of a decoded recording is cached, wanted or not: decoding was paid.
        pending.add(np.arange(len(frames)) + first_sample[group_index], frames)
    pending.flush()
    return compact_dtype(out), labels


class _PendingWrites:
    """Decoded frames waiting for the cache: written in batches of ~256 MB, so a chunk file
    is rewritten a few times per split (not once per recording) and memory stays bounded."""

    FLUSH_BYTES = 256 * 2**20

    def __init__(self, cache: FrameCache | None, keys: Sequence[str]) -> None:
        self.cache, self.keys = cache, keys
        self.indices: list[np.ndarray] = []
        self.frames: list[np.ndarray] = []
        self.nbytes = 0

    def add(self, indices: np.ndarray, frames: np.ndarray) -> None:
        if self.cache is None:
            return
        self.indices.append(indices)
        self.frames.append(frames)
        self.nbytes += frames.nbytes
        if self.nbytes >= self.FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.cache is None or not self.frames:
            return
        dtype = np.result_type(*(f.dtype for f in self.frames))
        frames = np.concatenate([f.astype(dtype, copy=False) for f in self.frames])
        self.cache.store(np.concatenate(self.indices), self.keys, frames)
        self.indices, self.frames, self.nbytes = [], [], 0


def _integrate(dataset: EventDatasetSpec, group: RecordingGroup, spec: FrameSpec) -> np.ndarray:
    """Frames of one recording; a stream the integration cannot take names the recording."""
    try:
        return integrate_group(dataset, _decode(group), spec)
    except ValueError as err:
        raise DataError(f"{dataset.name} recording {group.keys[0]}: {err}") from err


def _decode(group: RecordingGroup) -> list[np.ndarray]:
    samples = group.load()
    if len(samples) != len(group.keys):
        raise DataError(f"{group.keys[0]}: decoded {len(samples)} samples, expected "
                        f"{len(group.keys)}")
    return samples
