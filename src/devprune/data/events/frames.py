"""Integrate event streams into frames ``[T, 2, H, W]`` (event counts per polarity).

Methods (``method=``):

- ``"number"``: SpikingJelly's ``split_by='number'``: the ``N`` events of a sample are cut
  in ``T`` consecutive slices of ``N // T`` events, the last slice also taking the remainder.
  When ``N < T`` every event lands in the last frame (what that rule gives for ``N // T = 0``).
- ``"time"``: SpikingJelly's ``split_by='time'``: ``T`` bins of equal duration
  ``(t_last - t_first) // T`` from the sample's first event; events past the last full bin go
  to the last frame. A zero-length sample puts all events in the last frame.
- ``"window"``: fixed windows of ``window_us`` microseconds from the first event; the first
  ``T`` windows are kept (later events are dropped, missing windows stay empty).

Channel 0 counts OFF events (p = 0), channel 1 ON events (p = 1), as SpikingJelly does.
Everything is vectorised over all events of a batch of samples (one ``bincount``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from devprune.errors import ConfigError

METHODS = ("number", "time", "window")


@dataclass(frozen=True)
class FrameSpec:
    """How a stream becomes frames; also the frame cache's key (see :mod:`.cache`)."""

    time_steps: int
    method: str = "number"
    window_us: int | None = None
    downsample: int = 1

    def __post_init__(self) -> None:
        if self.time_steps < 1:
            raise ConfigError(f"time_steps must be >= 1, got {self.time_steps}")
        if self.method not in METHODS:
            raise ConfigError(f"frame method {self.method!r} unknown; use one of {METHODS}")
        if self.method == "window" and (self.window_us is None or self.window_us <= 0):
            raise ConfigError("frame method 'window' needs window_us > 0 (microseconds)")
        if self.downsample < 1:
            raise ConfigError(f"downsample must be >= 1, got {self.downsample}")

    def key(self) -> str:
        """A short, file-name-safe description, e.g. ``T20-number-ds1``."""
        window = f"-w{self.window_us}" if self.method == "window" else ""
        return f"T{self.time_steps}-{self.method}{window}-ds{self.downsample}"


def integrate(events: np.ndarray, height: int, width: int, spec: FrameSpec) -> np.ndarray:
    """Frames ``int32 [T, 2, H', W']`` of one time-sorted event array (H' = ceil(H / ds))."""
    sample = np.zeros(len(events), dtype=np.int64)
    return integrate_batch(sample, events, 1, height, width, spec)[0]


def integrate_batch(
    sample: np.ndarray,
    events: np.ndarray,
    num_samples: int,
    height: int,
    width: int,
    spec: FrameSpec,
) -> np.ndarray:
    """Frames ``int32 [S, T, 2, H', W']`` of many samples' events at once.

    ``sample[i]`` is the sample of event ``i``; events must be grouped by sample in
    ascending order and time-sorted within a sample.
    """
    _check_sorted(sample, events["t"])
    frame, keep = _frame_of_each_event(sample, events["t"], num_samples, spec)
    ds = spec.downsample
    out_h, out_w = -(-height // ds), -(-width // ds)
    x = events["x"].astype(np.int64) // ds
    y = events["y"].astype(np.int64) // ds
    _check_bounds(x, y, out_w, out_h)
    channel = (events["p"] > 0).astype(np.int64)
    flat = ((sample * spec.time_steps + frame) * 2 + channel) * (out_h * out_w) + y * out_w + x
    size = num_samples * spec.time_steps * 2 * out_h * out_w
    counts = np.bincount(flat[keep], minlength=size)
    return counts.astype(np.int32).reshape(num_samples, spec.time_steps, 2, out_h, out_w)


def _frame_of_each_event(
    sample: np.ndarray, t: np.ndarray, num_samples: int, spec: FrameSpec
) -> tuple[np.ndarray, np.ndarray]:
    steps = spec.time_steps
    counts = np.bincount(sample, minlength=num_samples)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    keep = np.ones(len(t), dtype=bool)
    if spec.method == "number":
        rank = np.arange(len(t)) - starts[sample]
        per_frame = (counts // steps)[sample]
        frame = np.where(per_frame > 0, rank // np.maximum(per_frame, 1), steps - 1)
        return np.minimum(frame, steps - 1), keep
    first = _first_time(t, starts, counts)[sample]
    elapsed = t - first
    if spec.method == "time":
        last = _last_time(t, starts, counts)[sample]
        width = (last - first) // steps
        frame = np.where(width > 0, elapsed // np.maximum(width, 1), steps - 1)
        return np.minimum(frame, steps - 1), keep
    frame = elapsed // int(spec.window_us)  # type: ignore[arg-type]
    return np.minimum(frame, steps - 1), frame < steps


def _first_time(t: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    first = np.zeros(len(counts), dtype=np.int64)
    nonempty = counts > 0
    first[nonempty] = t[starts[nonempty]]
    return first


def _last_time(t: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    last = np.zeros(len(counts), dtype=np.int64)
    nonempty = counts > 0
    last[nonempty] = t[starts[nonempty] + counts[nonempty] - 1]
    return last


def _check_sorted(sample: np.ndarray, t: np.ndarray) -> None:
    if sample.size < 2:
        return
    ds, dt = np.diff(sample), np.diff(t)
    if np.any(ds < 0) or np.any((ds == 0) & (dt < 0)):
        raise ValueError("events must be grouped by ascending sample and time-sorted within one")


def _check_bounds(x: np.ndarray, y: np.ndarray, width: int, height: int) -> None:
    if x.size and (x.min() < 0 or y.min() < 0 or x.max() >= width or y.max() >= height):
        raise ValueError(
            f"event coordinates outside the {width}x{height} grid "
            f"(x in [{x.min()}, {x.max()}], y in [{y.min()}, {y.max()}]); "
            "wrong sensor size for this file?"
        )


def center_crop(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Crop the last two dims of ``frames`` to ``height x width`` around the centre.

    N-MNIST's 34x34 frames become 32x32 by dropping the 1-pixel border, as the reference does
    after integration (so the dropped events still count in the ``number`` split).
    """
    full_h, full_w = frames.shape[-2:]
    if height > full_h or width > full_w:
        raise ValueError(f"cannot crop {full_h}x{full_w} frames to {height}x{width}")
    top, left = (full_h - height) // 2, (full_w - width) // 2
    return frames[..., top : top + height, left : left + width]


def compact_dtype(frames: np.ndarray) -> np.ndarray:
    """Counts as uint8 when they fit, else int16, else int32: lossless, and dtypes torch
    indexes natively (its uint16 support is partial)."""
    peak = int(frames.max()) if frames.size else 0
    for dtype in (np.uint8, np.int16):
        if peak <= np.iinfo(dtype).max:
            return frames if frames.dtype == dtype else frames.astype(dtype)
    return frames.astype(np.int32)


def widen_to_hold(out: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """``out``, converted to a wider integer dtype only if ``frames``' dtype needs one.

    Lets a split's frames be collected in uint8 (a full DVS-Gesture split is 2.4 GB as
    uint8, 9.8 GB as int32) and widened in the rare case a pixel counts past 255.
    """
    if np.can_cast(frames.dtype, out.dtype):
        return out
    return out.astype(np.result_type(out.dtype, frames.dtype))
