"""N-MNIST (Orchard et al. 2015): the publisher's ATIS ``.bin`` files.

Each event is 40 bits, big-endian: byte 0 = x, byte 1 = y, then 1 polarity bit (1 = ON)
and a 23-bit timestamp in microseconds. A record with y == 240 is not an event but a
timestamp-overflow marker: every later event is 2**13 us later than its 23 bits say (the
publisher's own readers apply the same rule; N-MNIST samples last ~300 ms, so real files
rarely contain one). Sensor 34x34; labels are the digit folder names.

Layouts accepted under ``<root>/nmnist/``: ``Train/<digit>/*.bin`` and ``Test/<digit>/*.bin``
(the publisher's ``Train.zip`` / ``Test.zip`` extracted there), the zips themselves
(``Train.zip``, read without extracting), SpikingJelly's ``extract/Train/...`` or its
converted ``events_np/{train,test}/<digit>/*.npz``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from devprune.data.events.npz import converted_split_groups
from devprune.data.events.types import RecordingGroup, SensorSize, check_stream, make_events
from devprune.errors import DataError

SENSOR = SensorSize(width=34, height=34)
OVERFLOW_Y = 240
OVERFLOW_STEP_US = 2**13
MAX_SAMPLE_BYTES = 64 * 2**20  # a real sample is ~20 KB; a zip member past this is refused
SPLIT_FOLDERS = {"train": "Train", "test": "Test"}


def decode_nmnist(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of one N-MNIST ``.bin`` file into an event array."""
    if len(raw) % 5:
        raise DataError(f"{source}: {len(raw)} bytes is not a multiple of 5; not an N-MNIST .bin")
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 5).astype(np.int64)
    t = ((rec[:, 2] & 0x7F) << 16) | (rec[:, 3] << 8) | rec[:, 4]
    is_marker = rec[:, 1] == OVERFLOW_Y
    t = t + np.cumsum(is_marker) * OVERFLOW_STEP_US
    rec, t = rec[~is_marker], t[~is_marker]
    check_stream(t, rec[:, 0], rec[:, 1], source, sensor=SENSOR,
                 where=lambda i: f"byte {5 * int(np.flatnonzero(~is_marker)[i])}")
    return make_events(t, rec[:, 0], rec[:, 1], rec[:, 2] >> 7)


def read_nmnist(path: str | Path) -> np.ndarray:
    """Events of one N-MNIST ``.bin`` file."""
    path = Path(path)
    return decode_nmnist(path.read_bytes(), str(path))


def nmnist_groups(folder: Path, split: str) -> list[RecordingGroup]:
    """Samples of one split, ordered by digit then file name (one group per file)."""
    name = SPLIT_FOLDERS[split]
    for base in (folder, folder / "extract", folder / "NMNIST"):
        if (base / name).is_dir():
            return _directory_groups(base / name)
        if (base / f"{name}.zip").is_file():
            return _zip_groups(base / f"{name}.zip")
    converted = converted_split_groups(folder, split, SENSOR)
    if converted is not None:
        return converted
    raise DataError(
        f"N-MNIST {split} split not found under {folder}. Download Train.zip and Test.zip from "
        "the publisher (https://www.garrickorchard.com/datasets/n-mnist, or its Mendeley Data "
        f"page) and put them in {folder}/ (zipped or extracted: {folder}/{name}/<digit>/*.bin)."
    )


def _directory_groups(split_dir: Path) -> list[RecordingGroup]:
    groups = []
    for digit_dir in sorted(p for p in split_dir.iterdir() if p.is_dir() and p.name.isdigit()):
        for path in sorted(digit_dir.glob("*.bin")):
            groups.append(
                RecordingGroup(
                    keys=(f"{digit_dir.name}/{path.stem}",),
                    labels=(int(digit_dir.name),),
                    load=_file_loader(path),
                )
            )
    return groups


def _file_loader(path: Path) -> Callable[[], list[np.ndarray]]:
    return lambda: [read_nmnist(path)]


def _zip_groups(zip_path: Path) -> list[RecordingGroup]:
    with zipfile.ZipFile(zip_path) as archive:
        members = sorted(
            (m for m in archive.namelist() if _is_sample_member(m)), key=_zip_member_order
        )
    return [
        RecordingGroup(
            keys=(f"{Path(m).parent.name}/{Path(m).stem}",),
            labels=(int(Path(m).parent.name),),
            load=_zip_loader(zip_path, m),
        )
        for m in members
    ]


def _zip_loader(zip_path: Path, member: str) -> Callable[[], list[np.ndarray]]:
    def load() -> list[np.ndarray]:
        archive = _open_zip(zip_path)
        size = archive.getinfo(member).file_size
        if size > MAX_SAMPLE_BYTES:
            raise DataError(f"{zip_path}:{member}: {size:,} bytes uncompressed, far more than an "
                            f"N-MNIST sample (limit {MAX_SAMPLE_BYTES:,}); the archive is corrupt")
        return [decode_nmnist(archive.read(member), f"{zip_path}:{member}")]

    return load


_OPEN_ZIPS: dict[tuple[Path, int], zipfile.ZipFile] = {}


def _open_zip(zip_path: Path) -> zipfile.ZipFile:
    """One open handle per archive and process: parsing a 60k-member directory costs ~50 ms,
    and DataLoader workers (other pids) must not share a file position."""
    key = (zip_path, os.getpid())
    if key not in _OPEN_ZIPS:
        _OPEN_ZIPS[key] = zipfile.ZipFile(zip_path)
    return _OPEN_ZIPS[key]


def _is_sample_member(member: str) -> bool:
    return member.endswith(".bin") and Path(member).parent.name.isdigit()


def _zip_member_order(member: str) -> tuple[int, str]:
    path = Path(member)
    return int(path.parent.name), path.name
