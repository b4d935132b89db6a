"""The in-memory event representation shared by every reader and transform.

An event stream is a 1-D numpy structured array with fields ``t`` (microseconds, int64),
``x``, ``y`` (pixel column / row, int16) and ``p`` (polarity, int8: 1 = ON / brightness
increase, 0 = OFF). Readers return events sorted by ``t`` (stable, so simultaneous events
keep file order), which the frame integration relies on.

Readers check what they decode with :func:`check_stream` before sorting: a negative
timestamp, a coordinate outside the sensor or a timestamp that goes back by more than
``MAX_BACKSTEP_US`` (1 s: corruption, not the sensor's jitter of a few microseconds to
milliseconds, which AEDAT files may hold and which is sorted) is a DataError naming the file
and the byte offset of the first bad event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from devprune.errors import DataError

MAX_BACKSTEP_US = 1_000_000

EVENT_DTYPE = np.dtype([("t", np.int64), ("x", np.int16), ("y", np.int16), ("p", np.int8)])


def make_events(t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Pack four equally long arrays into an :data:`EVENT_DTYPE` array sorted by time."""
    events = np.empty(len(t), dtype=EVENT_DTYPE)
    events["t"] = t
    events["x"] = x
    events["y"] = y
    events["p"] = p
    return sort_by_time(events)


def sort_by_time(events: np.ndarray) -> np.ndarray:
    """Return ``events`` ordered by timestamp; already-sorted input is returned as is."""
    t = events["t"]
    if t.size < 2 or bool(np.all(t[1:] >= t[:-1])):
        return events
    return events[np.argsort(t, kind="stable")]


def check_stream(t: np.ndarray, x: np.ndarray, y: np.ndarray, source: str, *,
                 where: Callable[[int], str], sensor: SensorSize | None = None) -> None:
    """Refuse a decoded stream with negative or jumping-back timestamps or coordinates
    outside ``sensor``; ``where(i)`` says where event ``i`` is in the file (e.g. its byte)."""
    if t.size and int(t.min()) < 0:
        i = int(np.argmax(t < 0))
        raise DataError(f"{source}: negative timestamp {int(t[i])} at {where(i)}; the file is "
                        "corrupt")
    if t.size > 1:
        back = t[1:] < np.maximum.accumulate(t[:-1]) - MAX_BACKSTEP_US
        if back.any():
            i = int(np.argmax(back)) + 1
            raise DataError(
                f"{source}: timestamps not sorted: {int(t[i])} us at {where(i)} comes after "
                f"{int(t[:i].max())} us (more than {MAX_BACKSTEP_US:,} us back); the file is "
                "corrupt or its events are out of order")
    if sensor is not None and x.size:
        outside = (x < 0) | (x >= sensor.width) | (y < 0) | (y >= sensor.height)
        if outside.any():
            i = int(np.argmax(outside))
            raise DataError(
                f"{source}: event at {where(i)} has x={int(x[i])}, y={int(y[i])}, outside the "
                f"{sensor.width}x{sensor.height} sensor; a file of another dataset or corrupt")


@dataclass(frozen=True)
class SensorSize:
    """Pixel grid of the sensor that produced a stream (width = x range, height = y range)."""

    width: int
    height: int

    @property
    def hw(self) -> tuple[int, int]:
        return self.height, self.width


@dataclass(frozen=True)
class RecordingGroup:
    """Samples that are decoded together: one file (a DVS-Gesture file holds ~11 gestures).

    ``keys`` name the samples uniquely within a split (they key the frame cache); ``labels``
    are known without decoding; ``load()`` decodes the file and returns one event array per
    key, in the same order.
    """

    keys: tuple[str, ...]
    labels: tuple[int, ...]
    load: Callable[[], list[np.ndarray]]
