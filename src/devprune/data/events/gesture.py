"""DVS128 Gesture (Amir et al. 2017, IBM): the publisher's ``DvsGesture/`` folder.

Each recording ``userNN_<lighting>.aedat`` (AEDAT 3.1, 128x128 DVS) has a
``userNN_<lighting>_labels.csv`` with header ``class,startTime_usec,endTime_usec`` and one row
per gesture (classes 1-11, stored here as labels 0-10). A sample is the events of one row with
``start <= t < end``. Splits follow the publisher's ``trials_to_train.txt`` /
``trials_to_test.txt`` (users 1-23 train, 24-29 test, which is used when the lists are absent).

Layouts accepted under ``<root>/dvs-gesture/``: ``DvsGesture/`` (``DvsGesture.tar.gz``
extracted there), the same files directly in the folder, SpikingJelly's
``extract/DvsGesture/`` or its converted ``events_np/{train,test}/<label>/*.npz``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from devprune.data.events.aedat import read_aedat31
from devprune.data.events.npz import converted_split_groups
from devprune.data.events.types import RecordingGroup, SensorSize
from devprune.errors import DataError

SENSOR = SensorSize(width=128, height=128)
NUM_CLASSES = 11
TRAIN_USERS = range(1, 24)
TRIAL_LISTS = {"train": "trials_to_train.txt", "test": "trials_to_test.txt"}
_USER = re.compile(r"user(\d+)_")


def gesture_groups(folder: Path, split: str) -> list[RecordingGroup]:
    """One group per recording of the split (its gestures are decoded together)."""
    recordings_dir = _find_recordings(folder)
    if recordings_dir is None:
        converted = converted_split_groups(folder, split, SENSOR)
        if converted is not None:
            return converted
        raise DataError(
            f"DVS128 Gesture not found under {folder}. Download DvsGesture.tar.gz from the "
            "publisher (IBM Research, https://research.ibm.com/interactive/dvsgesture/) and "
            f"extract it into {folder}/ so that {folder}/DvsGesture/user01_fluorescent.aedat "
            "and its _labels.csv exist."
        )
    return [_recording_group(path) for path in _split_recordings(recordings_dir, split)]


def _find_recordings(folder: Path) -> Path | None:
    for candidate in (folder / "DvsGesture", folder, folder / "extract" / "DvsGesture"):
        if candidate.is_dir() and any(candidate.glob("user*_*.aedat")):
            return candidate
    return None


def _split_recordings(recordings_dir: Path, split: str) -> list[Path]:
    trial_list = recordings_dir / TRIAL_LISTS[split]
    if trial_list.is_file():
        names = [line.strip() for line in trial_list.read_text().splitlines() if line.strip()]
        paths = [recordings_dir / name for name in names]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise DataError(f"{trial_list} lists {len(missing)} missing file(s), e.g. {missing[0]}")
        return sorted(paths)
    in_train = split == "train"
    return sorted(
        p for p in recordings_dir.glob("user*_*.aedat") if (_user_of(p) in TRAIN_USERS) == in_train
    )


def _user_of(path: Path) -> int:
    match = _USER.match(path.name)
    if match is None:
        raise DataError(f"{path}: file name does not start with userNN_")
    return int(match.group(1))


def read_gesture_labels(csv_path: Path) -> np.ndarray:
    """``int64 [G, 3]`` rows (label 0-10, start_us, end_us) of a ``*_labels.csv``."""
    if not csv_path.is_file():
        raise DataError(f"{csv_path} missing: every .aedat recording needs its _labels.csv")
    lines = [ln for ln in csv_path.read_text().splitlines()[1:] if ln.strip()]
    try:
        rows = np.array([[int(v) for v in ln.split(",")[:3]] for ln in lines], dtype=np.int64)
    except ValueError as err:
        raise DataError(f"{csv_path}: expected integer rows class,start,end ({err})") from err
    rows = rows.reshape(-1, 3)
    if rows.size and (rows[:, 0].min() < 1 or rows[:, 0].max() > NUM_CLASSES):
        raise DataError(f"{csv_path}: classes must be 1-{NUM_CLASSES}")
    bad = np.flatnonzero((rows[:, 1] < 0) | (rows[:, 2] <= rows[:, 1])) if rows.size else []
    if len(bad):
        start, end = rows[bad[0], 1:]
        raise DataError(f"{csv_path}: row {bad[0] + 1} has start {start} and end {end} us; need "
                        "0 <= start < end")
    rows[:, 0] -= 1
    return rows


def _recording_group(aedat_path: Path) -> RecordingGroup:
    rows = read_gesture_labels(aedat_path.with_name(f"{aedat_path.stem}_labels.csv"))
    return RecordingGroup(
        keys=tuple(f"{aedat_path.stem}_{i}" for i in range(len(rows))),
        labels=tuple(int(label) for label in rows[:, 0]),
        load=_gesture_loader(aedat_path, rows),
    )


def _gesture_loader(aedat_path: Path, rows: np.ndarray) -> Callable[[], list[np.ndarray]]:
    return lambda: split_gestures(read_aedat31(aedat_path, SENSOR), rows)


def split_gestures(events: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
    """Cut a time-sorted recording into its gestures (``start <= t < end``)."""
    lo = np.searchsorted(events["t"], rows[:, 1], side="left")
    hi = np.searchsorted(events["t"], rows[:, 2], side="left")
    return [events[a:b] for a, b in zip(lo, hi, strict=True)]
