"""Event files SpikingJelly leaves behind: ``events_np/<split>/<class>/*.npz``.

Each ``.npz`` holds arrays ``t``, ``x``, ``y``, ``p`` of one sample (SpikingJelly writes them
when it first converts a dataset). Reading them skips the original decoding entirely.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from devprune.data.events.types import RecordingGroup, SensorSize, check_stream, make_events
from devprune.errors import DataError

NPZ_KEYS = ("t", "x", "y", "p")


def read_event_npz(path: str | Path, sensor: SensorSize | None = None) -> np.ndarray:
    """Events of one SpikingJelly-style ``.npz`` (keys t, x, y, p): equally long 1-D integer
    arrays; ``sensor``: refuse coordinates outside it."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in NPZ_KEYS if k not in archive.files]
            if missing:
                raise DataError(f"{path}: no {missing} array(s); expected keys t, x, y, p")
            arrays = [archive[k] for k in NPZ_KEYS]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        detail = " ".join(str(err).split())[:200]
        raise DataError(f"{path}: unreadable .npz ({type(err).__name__}: {detail})") from err
    _check_arrays(path, arrays)
    check_stream(arrays[0].astype(np.int64), arrays[1].astype(np.int64),
                 arrays[2].astype(np.int64), str(path), sensor=sensor,
                 where=lambda i: f"event #{i}")
    return make_events(*arrays)


def _check_arrays(path: Path, arrays: list[np.ndarray]) -> None:
    lengths = {k: a.shape for k, a in zip(NPZ_KEYS, arrays, strict=True)}
    if any(a.ndim != 1 for a in arrays) or len({a.shape for a in arrays}) != 1:
        raise DataError(f"{path}: arrays t, x, y, p must be 1-D and equally long, got shapes "
                        f"{lengths}")
    for key, array in zip(NPZ_KEYS, arrays, strict=True):
        if array.dtype.kind not in "iub":
            raise DataError(f"{path}: array {key} holds {array.dtype}, expected integers")


def npz_groups(
    class_root: Path, label_of_folder: Callable[[str], int | None],
    sensor: SensorSize | None = None,
) -> list[RecordingGroup]:
    """One group per ``<class_root>/<class>/*.npz``; folders mapped to None are ignored."""
    groups = []
    for class_dir in sorted(p for p in class_root.iterdir() if p.is_dir()):
        label = label_of_folder(class_dir.name)
        if label is None:
            continue
        for path in sorted(class_dir.glob("*.npz")):
            groups.append(
                RecordingGroup(
                    keys=(f"{class_dir.name}/{path.stem}",),
                    labels=(label,),
                    load=_loader(path, sensor),
                )
            )
    return groups


def converted_split_groups(folder: Path, split: str,
                           sensor: SensorSize) -> list[RecordingGroup] | None:
    """Groups of SpikingJelly's converted split ``<folder>/events_np/<split>/<digit>/*.npz``
    (N-MNIST, DVS128 Gesture), or None when ``folder`` holds no such split."""
    split_root = folder / "events_np" / split
    if not split_root.is_dir():
        return None
    return npz_groups(split_root, digit_folder, sensor)


def _loader(path: Path, sensor: SensorSize | None) -> Callable[[], list[np.ndarray]]:
    return lambda: [read_event_npz(path, sensor)]


def digit_folder(name: str) -> int | None:
    return int(name) if name.isdigit() else None
