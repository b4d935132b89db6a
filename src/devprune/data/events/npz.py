"""Event files SpikingJelly leaves behind: ``events_np/<split>/<class>/*.npz``.

Each ``.npz`` holds arrays ``t``, ``x``, ``y``, ``p`` of one sample (SpikingJelly writes them
when it first converts a dataset). Reading them skips the original decoding entirely.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from devprune.data.events.types import RecordingGroup, make_events
from devprune.errors import DataError

NPZ_KEYS = ("t", "x", "y", "p")


def read_event_npz(path: str | Path) -> np.ndarray:
    """Events of one SpikingJelly-style ``.npz`` (keys t, x, y, p)."""
    path = Path(path)
    try:
        with np.load(path) as archive:
            missing = [k for k in NPZ_KEYS if k not in archive.files]
            if missing:
                raise DataError(f"{path}: no {missing} array(s); expected keys t, x, y, p")
            return make_events(*(archive[k] for k in NPZ_KEYS))
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: unreadable .npz ({err})") from err


def npz_groups(
    class_root: Path, label_of_folder: Callable[[str], int | None]
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
                    load=_loader(path),
                )
            )
    return groups


def _loader(path: Path) -> Callable[[], list[np.ndarray]]:
    return lambda: [read_event_npz(path)]


def digit_folder(name: str) -> int | None:
    return int(name) if name.isdigit() else None
