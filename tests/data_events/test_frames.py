"""Frame integration against hand-computed counts, and the frame augmentations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from devprune.data.events.augment import FramesRandomCrop, FramesRandomRotation, rotate_frames
from devprune.data.events.frames import FrameSpec, center_crop, integrate, integrate_batch
from devprune.data.events.types import make_events
from devprune.errors import ConfigError


def ten_events(p=None):
    """Ten events at t = 0, 10, ..., 90; event i at pixel (x=i, y=0), ON unless p given."""
    t = np.arange(10) * 10
    return make_events(t, np.arange(10), np.zeros(10), np.ones(10) if p is None else p)


def frame_of_each_event(frames: np.ndarray) -> list[int]:
    """For the ten_events layout: the frame each x position landed in (-1 if none)."""
    where = []
    for x in range(10):
        hits = np.nonzero(frames[:, :, 0, x].sum(1))[0]
        where.append(int(hits[0]) if hits.size else -1)
    return where


def test_split_by_number_gives_n_over_t_events_per_frame_and_the_rest_to_the_last():
    frames = integrate(ten_events(), 1, 10, FrameSpec(3, "number"))
    assert frames.shape == (3, 2, 1, 10)
    # 10 // 3 = 3 events per frame; the last frame also takes the remainder.
    assert frame_of_each_event(frames) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert frames.sum() == 10


def test_split_by_number_with_fewer_events_than_frames_fills_the_last_frame():
    frames = integrate(ten_events(), 1, 10, FrameSpec(12, "number"))
    assert frames[:11].sum() == 0 and frames[11].sum() == 10


def test_split_by_time_uses_equal_durations_from_the_first_event():
    # dt = (90 - 0) // 3 = 30: [0, 30) -> 0, [30, 60) -> 1, the rest -> 2.
    frames = integrate(ten_events(), 1, 10, FrameSpec(3, "time"))
    assert frame_of_each_event(frames) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    shifted = ten_events()
    shifted["t"] += 1_000_000  # only elapsed time matters
    assert np.array_equal(integrate(shifted, 1, 10, FrameSpec(3, "time")), frames)


def test_fixed_window_keeps_the_first_t_windows_and_drops_later_events():
    frames = integrate(ten_events(), 1, 10, FrameSpec(3, "window", window_us=25))
    # windows [0,25) [25,50) [50,75); t = 80, 90 fall in the 4th window and are dropped.
    assert frame_of_each_event(frames) == [0, 0, 0, 1, 1, 2, 2, 2, -1, -1]


def test_polarity_goes_to_channel_one_for_on_and_zero_for_off():
    p = np.array([1, 0, 1, 1, 0, 0, 0, 1, 1, 1])
    frames = integrate(ten_events(p), 1, 10, FrameSpec(1))
    assert np.array_equal(frames[0, 1, 0], p)
    assert np.array_equal(frames[0, 0, 0], 1 - p)


def test_repeated_pixel_events_are_counted_and_downsampling_sums_blocks():
    events = make_events(np.arange(5), [3, 3, 2, 0, 5], [5, 5, 4, 0, 5], [1, 1, 1, 0, 1])
    full = integrate(events, 6, 6, FrameSpec(1))
    assert full[0, 1, 5, 3] == 2 and full[0, 1, 4, 2] == 1 and full[0, 0, 0, 0] == 1
    half = integrate(events, 6, 6, FrameSpec(1, downsample=2))
    assert half.shape == (1, 2, 3, 3)
    # (3,5),(3,5),(2,4) -> (1,2); (5,5) -> (2,2); (0,0) OFF -> (0,0)
    assert half[0, 1, 2, 1] == 3 and half[0, 1, 2, 2] == 1 and half[0, 0, 0, 0] == 1
    assert half.sum() == full.sum()


def test_batch_integration_equals_integrating_each_sample():
    rng = np.random.default_rng(3)
    samples = []
    for n in (0, 7, 40, 3):
        samples.append(make_events(np.sort(rng.integers(0, 1000, n)), rng.integers(0, 8, n),
                                   rng.integers(0, 6, n), rng.integers(0, 2, n)))
    sample = np.repeat(np.arange(4), [len(s) for s in samples])
    for spec in (FrameSpec(4), FrameSpec(4, "time"), FrameSpec(4, "window", window_us=200)):
        batch = integrate_batch(sample, np.concatenate(samples), 4, 6, 8, spec)
        for i, events in enumerate(samples):
            assert np.array_equal(batch[i], integrate(events, 6, 8, spec))


def test_unsorted_events_and_out_of_range_pixels_are_rejected():
    events = ten_events()
    with pytest.raises(ValueError, match="time-sorted"):
        integrate(events[::-1], 1, 10, FrameSpec(2))
    with pytest.raises(ValueError, match="outside"):
        integrate(events, 1, 8, FrameSpec(2))


def test_bad_frame_specs_name_the_fix():
    with pytest.raises(ConfigError, match="window_us"):
        FrameSpec(4, "window")
    with pytest.raises(ConfigError, match="number"):
        FrameSpec(4, "bins")


def test_center_crop_drops_the_nmnist_border():
    frames = np.arange(34 * 34).reshape(1, 1, 34, 34)
    cropped = center_crop(frames, 32, 32)
    assert cropped.shape == (1, 1, 32, 32)
    assert cropped[0, 0, 0, 0] == 34 + 1  # pixel (y=1, x=1) of the sensor


def test_rotation_by_ninety_degrees_is_rot90_and_zero_angle_is_identity():
    x = torch.zeros(2, 3, 2, 5, 5)
    x[0, :, :, 0, 4] = 1  # top-right corner
    x[1, 1, 0, 2, 1] = 7
    out = rotate_frames(x, torch.tensor([math.pi / 2, 0.0]))
    assert torch.equal(out[0], torch.rot90(x[0], 1, (-2, -1)))  # counter-clockwise
    assert torch.equal(out[1], x[1])


def test_random_crop_and_rotation_apply_one_draw_to_all_frames_of_a_sample():
    x = torch.zeros(4, 3, 2, 16, 16)
    x[:, :, :, 6:10, 6:10] = 1
    gen = torch.Generator().manual_seed(0)
    cropped = FramesRandomCrop(16, padding=4)(x, gen)
    rotated = FramesRandomRotation(5)(x, gen)
    for out in (cropped, rotated):
        assert out.shape == x.shape
        # every frame (and channel) of a sample moved the same way
        assert torch.equal(out, out[:, :1, :1].expand_as(out))
    again = FramesRandomCrop(16, padding=4)(x, torch.Generator().manual_seed(0))
    assert torch.equal(again, cropped)


def segment_oracle(t: np.ndarray, steps: int, method: str) -> list[tuple[int, int]]:
    """SpikingJelly's rule as slices [j_l, j_r) per frame, one frame at a time; the last
    frame runs from its own start to the end of the stream."""
    n = len(t)
    if method == "number":
        per = n // steps
        starts = [i * per for i in range(steps)]
        ends = [(i + 1) * per for i in range(steps - 1)] + [n]
        return list(zip(starts, ends, strict=True))
    width = (t[-1] - t[0]) // steps
    bounds = []
    for i in range(steps):
        lo = int(np.searchsorted(t, t[0] + i * width, side="left"))
        hi = int(np.searchsorted(t, t[0] + (i + 1) * width, side="left"))
        bounds.append((lo, n if i == steps - 1 else hi))
    return bounds


@pytest.mark.parametrize("method", ["number", "time"])
def test_vectorised_split_matches_the_segment_rule_on_random_streams(method):
    rng = np.random.default_rng(7)
    for n in (25, 97, 400):
        t = np.sort(rng.integers(0, 5000, n))
        events = make_events(t, rng.integers(0, 4, n), rng.integers(0, 3, n), rng.integers(0, 2, n))
        frames = integrate(events, 3, 4, FrameSpec(5, method))
        for i, (lo, hi) in enumerate(segment_oracle(events["t"], 5, method)):
            part = events[lo:hi]
            expected = np.zeros((2, 3, 4), dtype=np.int64)
            np.add.at(expected, (part["p"].astype(int), part["y"], part["x"]), 1)
            assert np.array_equal(frames[i], expected), (n, i)
