"""CIFAR10-DVS (Li et al. 2017): AEDAT 2.0 recordings of CIFAR-10 images on a DVS128.

The publisher's per-class archives extract to ``<class>/cifar10_<class>_<n>.aedat``. Events
are mapped as SpikingJelly does (``x = 127 - y_raw``, ``y = 127 - x_raw``, ``p = 1 - p_raw``),
which gives upright images with p = 1 for brightness increases, so its converted
``events_np/<class>/*.npz`` files read back identically. There is no official test split:
per class, files in name order (lexicographic, as SpikingJelly's folder dataset lists them)
go 90 % to train and the last 10 % to test, which is SpikingJelly's
``split_to_train_test_set(0.9, ..., random_split=False)``.

Layouts accepted under ``<root>/cifar10-dvs/``: ``<class>/*.aedat`` (also under ``extract/``)
or ``events_np/<class>/*.npz``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from devprune.data.events.aedat import read_aedat2_dvs128
from devprune.data.events.npz import read_event_npz
from devprune.data.events.types import RecordingGroup, SensorSize, make_events
from devprune.errors import DataError

SENSOR = SensorSize(width=128, height=128)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
TRAIN_FRACTION = 0.9


def read_cifar10dvs(path: str | Path) -> np.ndarray:
    """Events of one CIFAR10-DVS ``.aedat`` in SpikingJelly's orientation and polarity."""
    raw = read_aedat2_dvs128(path)
    return make_events(raw["t"], 127 - raw["y"], 127 - raw["x"], 1 - raw["p"])


def cifar10dvs_groups(folder: Path, split: str) -> list[RecordingGroup]:
    """Samples of the split: per class, the first 90 % of files (name order) or the rest."""
    class_root, pattern, reader = _find_layout(folder)
    groups = []
    for label, name in enumerate(CLASSES):
        files = sorted((class_root / name).glob(pattern))
        cut = int(len(files) * TRAIN_FRACTION)
        chosen = files[:cut] if split == "train" else files[cut:]
        groups += [
            RecordingGroup(keys=(f"{name}/{p.stem}",), labels=(label,), load=_loader(reader, p))
            for p in chosen
        ]
    return groups


def _find_layout(folder: Path) -> tuple[Path, str, Callable[[Path], np.ndarray]]:
    for base in (folder, folder / "extract"):
        if _has_files(base, "*.aedat"):
            return base, "*.aedat", read_cifar10dvs
    if _has_files(folder / "events_np", "*.npz"):
        return folder / "events_np", "*.npz", functools.partial(read_event_npz, sensor=SENSOR)
    raise DataError(
        f"CIFAR10-DVS not found under {folder}. Download the ten class archives "
        "(airplane.zip ... truck.zip) from the publisher's figshare page "
        "(https://doi.org/10.6084/m9.figshare.4724671) and extract them into "
        f"{folder}/ so that {folder}/airplane/cifar10_airplane_0.aedat exists."
    )


def _has_files(class_root: Path, pattern: str) -> bool:
    return any(next((class_root / name).glob(pattern), None) for name in CLASSES)


def _loader(reader: Callable[[Path], np.ndarray], path: Path) -> Callable[[], list[np.ndarray]]:
    return lambda: [reader(path)]
