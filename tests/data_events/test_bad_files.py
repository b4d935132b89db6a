"""Malformed event files: every one a one-line DataError naming the file and where in it,
never a traceback of numpy or struct, never a loop without end."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pytest

from devprune.cli import main
from devprune.data import get_dataset
from devprune.data.events.aedat import decode_aedat2_dvs128, decode_aedat31
from devprune.data.events.gesture import SENSOR as GESTURE_SENSOR
from devprune.data.events.gesture import read_gesture_labels
from devprune.data.events.nmnist import decode_nmnist
from devprune.data.events.npz import read_event_npz
from devprune.data.events.types import SensorSize
from devprune.errors import DataError
from tests.data_events.writers import (
    AEDAT2_HEADER,
    AEDAT31_HEADER,
    aedat2_bytes,
    aedat31_packet,
    nmnist_bytes,
    polarity_word,
    write_gesture_labels,
    write_nmnist,
)

SOURCE = "rec.aedat"


def _refused(decode, raw: bytes, *fragments: str, **kwargs) -> str:
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        decode(raw, SOURCE, **kwargs)
    assert time.perf_counter() - start < 2.0
    message = str(info.value)
    assert message.startswith(f"{SOURCE}: ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def _packet_header(etype=1, size=8, tsoff=4, overflow=0, capacity=1, number=1, valid=1):
    return struct.pack("<hhiiiiii", etype, 1, size, tsoff, overflow, capacity, number, valid)


HEADER_END = len(AEDAT31_HEADER)
EVENT = struct.pack("<Ii", polarity_word(1, 1, 1), 5)


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        (_packet_header(capacity=-1, number=0, valid=0), ["byte", "capacity=-1"]),
        (_packet_header(capacity=-10**9, number=-5), ["capacity=-1000000000"]),
        (_packet_header(number=-3, valid=0) + EVENT, ["number=-3"]),
        (_packet_header(number=2, capacity=1) + EVENT, ["number=2"]),
        (_packet_header(valid=-1) + EVENT, ["valid=-1"]),
        (_packet_header(size=0), ["event size 0"]),
        (_packet_header(size=-8), ["event size -8"]),
        (_packet_header(capacity=2**30, number=1) + EVENT, ["only 8 bytes left", "truncated"]),
        (_packet_header(overflow=-1) + EVENT, ["timestamp overflow -1"]),
        (_packet_header(size=4, tsoff=0, capacity=2, number=2, valid=2) + EVENT,
         ["events of 4 bytes"]),
        (_packet_header()[:20], ["truncated AEDAT 3.1 packet header"]),
    ],
)
def test_aedat31_corrupt_packet_headers(body: bytes, fragments: list[str]) -> None:
    message = _refused(decode_aedat31, AEDAT31_HEADER + body, *fragments)
    assert f"byte {HEADER_END}" in message


def test_aedat31_headers_timestamps_and_coordinates() -> None:
    _refused(decode_aedat31, b"garbage", "not an AEDAT 3.x file", "byte 0")
    _refused(decode_aedat31, b"#!AER-DAT3.1\r\n#no end\r\n" + b"\0" * 100, "END-HEADER")
    negative = aedat31_packet(1, [(polarity_word(1, 1, 1), -7)])
    _refused(decode_aedat31, AEDAT31_HEADER + negative, "negative timestamp -7",
             f"byte {HEADER_END + 28}")
    words = [(polarity_word(1, 1, 1), 5_000_000), (polarity_word(2, 2, 1), 10)]
    _refused(decode_aedat31, AEDAT31_HEADER + aedat31_packet(1, words),
             "timestamps not sorted", f"byte {HEADER_END + 28 + 8}")
    outside = aedat31_packet(1, [(polarity_word(1, 1, 1), 1), (polarity_word(300, 2, 1), 2)])
    _refused(decode_aedat31, AEDAT31_HEADER + outside, "x=300, y=2", "128x128 sensor",
             f"byte {HEADER_END + 28 + 8}", sensor=GESTURE_SENSOR)
    jitter = [(polarity_word(1, 1, 1), 500), (polarity_word(2, 2, 1), 400)]
    events = decode_aedat31(AEDAT31_HEADER + aedat31_packet(1, jitter), sensor=GESTURE_SENSOR)
    assert events["t"].tolist() == [400, 500]  # sensor jitter is sorted, not refused


def test_aedat2_headers_bodies_and_timestamps() -> None:
    _refused(decode_aedat2_dvs128, b"\0" * 16, "not an AEDAT 2.0 file")
    _refused(decode_aedat2_dvs128, b"#!AER-DAT1.0\r\n" + b"\0" * 6, "not an AEDAT 2.0")
    _refused(decode_aedat2_dvs128, AEDAT2_HEADER + b"\0" * 12, "not a whole number",
             f"byte {len(AEDAT2_HEADER)}")
    raw = aedat2_bytes([1, 2], [1, 2], [0, 1], [3_000_000, 5])
    _refused(decode_aedat2_dvs128, raw, "timestamps not sorted",
             f"byte {len(AEDAT2_HEADER) + 8}")
    endless = b"#" * 50 + b"\n" + b"#" * (5 * 2**20)  # a header line without end
    _refused(decode_aedat2_dvs128, b"#!AER-DAT2.0\r\n" + endless,
             "header line at byte 65 has no end")


def test_nmnist_coordinates_and_timestamps() -> None:
    raw = nmnist_bytes([1, 40], [1, 2], [1, 1], [10, 20])
    _refused(decode_nmnist, raw, "x=40, y=2", "34x34 sensor", "byte 5")
    marker = bytes([0, 240, 0, 0, 0])
    raw = nmnist_bytes([1], [1], [1], [10]) + marker + nmnist_bytes([2], [33], [0], [30])
    assert decode_nmnist(raw)["y"].tolist() == [1, 33]  # the marker is not an event
    raw = nmnist_bytes([1], [35], [1], [10]) + marker
    _refused(decode_nmnist, raw, "x=1, y=35", "byte 0")
    raw = nmnist_bytes([1, 2], [1, 2], [1, 1], [2_000_000, 100])
    _refused(decode_nmnist, raw, "timestamps not sorted", "byte 5")


@pytest.mark.parametrize(
    ("arrays", "fragments"),
    [
        ({"t": [1, 2], "x": [1], "y": [1, 2], "p": [0, 1]}, ["equally long"]),
        ({"t": [[1, 2]], "x": [[1, 1]], "y": [[1, 2]], "p": [[0, 1]]}, ["1-D"]),
        ({"t": [1.5, np.nan], "x": [1, 1], "y": [1, 2], "p": [0, 1]}, ["array t", "float64"]),
        ({"t": [-4, 2], "x": [1, 1], "y": [1, 2], "p": [0, 1]}, ["negative timestamp -4",
                                                               "event #0"]),
        ({"t": [1, 2], "x": [1, 34], "y": [1, 2], "p": [0, 1]}, ["x=34", "event #1"]),
        ({"t": [1, 2], "x": [1, -1], "y": [1, 2], "p": [0, 1]}, ["x=-1"]),
    ],
)
def test_npz_arrays_are_checked(tmp_path: Path, arrays: dict, fragments: list[str]) -> None:
    path = tmp_path / "s.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    with pytest.raises(DataError) as info:
        read_event_npz(path, SensorSize(34, 34))
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_unreadable_npz_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"unreadable \.npz"):
        read_event_npz(garbage)
    objects = tmp_path / "objects.npz"
    np.savez(objects, t=np.array([object()]), x=[1], y=[1], p=[1])
    with pytest.raises(DataError, match=r"unreadable \.npz"):
        read_event_npz(objects)


def test_gesture_label_rows_need_a_time_interval(tmp_path: Path) -> None:
    csv = tmp_path / "user01_led_labels.csv"
    write_gesture_labels(csv, [(1, 100, 200), (2, 300, 250)])
    with pytest.raises(DataError, match=r"row 2 has start 300 and end 250"):
        read_gesture_labels(csv)


def test_a_bad_file_in_a_dataset_is_one_line_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    for split in ("Train", "Test"):
        for label in range(10):
            write_nmnist(tmp_path / "nmnist" / split / str(label) / "00001.bin",
                         [1, 2], [1, 2], [0, 1], [10, 20])
    bad = tmp_path / "nmnist" / "Train" / "3" / "00001.bin"
    write_nmnist(bad, [1, 2, 99], [1, 2, 3], [0, 1, 1], [10, 20, 30])
    with pytest.raises(DataError, match=r"00001\.bin: event at byte 10 has x=99"):
        get_dataset("nmnist", "train", tmp_path, cache=False, val_fraction=0.0, seed=0)
    code = main(["train", "mnist-mlp-dense-quick", "--out", str(tmp_path / "run"),
                 "--set", "data.name=nmnist", f"data.root={tmp_path}", "data.val_fraction=0",
                 "model.name=snn-mlp", "data.options={cache: false}", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "byte 10 has x=99" in err, err
    assert not (tmp_path / "run").exists()


def test_a_zip_member_too_large_for_a_sample_is_refused(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import zipfile

    from devprune.data.events import nmnist

    folder = tmp_path / "nmnist"
    folder.mkdir()
    with zipfile.ZipFile(folder / "Test.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for label in range(10):
            archive.writestr(f"Test/{label}/00001.bin", b"\0" * 5 * 4096)
    monkeypatch.setattr(nmnist, "MAX_SAMPLE_BYTES", 5 * 4096 - 1)
    with pytest.raises(DataError, match=r"Test\.zip:Test/0/00001\.bin: 20,480 bytes"):
        get_dataset("nmnist", "test", tmp_path, cache=False, val_fraction=0.0, seed=0)


def _mutations(raw: bytes, rng, count: int):
    """Seeded random damage: overwritten bytes, truncation, inserted garbage."""
    for _ in range(count):
        out, op = bytearray(raw), rng.random()
        if op < 0.6:
            for _ in range(rng.randint(1, 4)):
                out[rng.randrange(len(out))] = rng.randrange(256)
        elif op < 0.8:
            out = out[: rng.randrange(len(out))]
        else:
            at = rng.randrange(len(out))
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        yield bytes(out)


def test_fuzzed_event_files_are_data_errors_or_events_never_tracebacks() -> None:
    import random

    rng = random.Random(19)
    packets = b"".join(aedat31_packet(1, [(polarity_word(rng.randrange(128),
                                                         rng.randrange(128), 1), 10 * i + j)
                                          for j in range(5)]) for i in range(6))
    formats = [
        (AEDAT31_HEADER + packets + aedat31_packet(0, [(5, 3)]),
         lambda raw: decode_aedat31(raw, SOURCE, GESTURE_SENSOR)),
        (aedat2_bytes([1, 2, 3, 4], [5, 6, 7, 8], [0, 1, 0, 1], [10, 20, 30, 40]),
         lambda raw: decode_aedat2_dvs128(raw, SOURCE)),
        (nmnist_bytes([1, 2, 3], [4, 5, 6], [0, 1, 1], [10, 20, 30]),
         lambda raw: decode_nmnist(raw, SOURCE)),
    ]
    refused = 0
    for original, decode in formats:
        for raw in _mutations(original, rng, 700):
            start = time.perf_counter()
            try:
                events = decode(raw)
            except DataError as err:
                assert str(err).startswith(f"{SOURCE}: ") and "\n" not in str(err)
                refused += 1
            else:
                assert events.dtype.names == ("t", "x", "y", "p")
            assert time.perf_counter() - start < 1.0
    assert refused > 1000
