"""The in-memory event representation shared by every reader and transform.

An event stream is a 1-D numpy structured array with fields ``t`` (microseconds, int64),
``x``, ``y`` (pixel column / row, int16) and ``p`` (polarity, int8: 1 = ON / brightness
increase, 0 = OFF). Readers return events sorted by ``t`` (stable, so simultaneous events
keep file order), which the frame integration relies on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

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


@dataclass(frozen=True)
class SensorSize:
    """Pixel grid of the sensor that produced a stream (width = x range, height = y range)."""

    width: int
    height: int

    @property
    def hw(self) -> tuple[int, int]:
        return self.height, self.width


@dataclass(frozen=True)
class EventSample:
    """One labelled recording: its events and where they came from (for error messages)."""

    events: np.ndarray
    label: int
    source: str


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
