"""Readers of the official on-disk formats, on bytes written here in exactly those formats."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from devprune.data.events.aedat import decode_aedat2_dvs128, decode_aedat31, read_aedat31
from devprune.data.events.cifar10dvs import read_cifar10dvs
from devprune.data.events.gesture import read_gesture_labels, split_gestures
from devprune.data.events.nmnist import decode_nmnist, read_nmnist
from devprune.data.events.npz import read_event_npz
from devprune.errors import DataError
from tests.data_events.writers import (
    AEDAT31_HEADER,
    aedat2_bytes,
    aedat31_packet,
    polarity_word,
    write_aedat31,
    write_event_npz,
    write_gesture_labels,
    write_nmnist,
)


def as_tuples(events):
    return [(int(e["t"]), int(e["x"]), int(e["y"]), int(e["p"])) for e in events]


# ---------------------------------------------------------------------------- N-MNIST
def test_nmnist_record_bits_decoded_by_hand():
    # x=5, y=33, ON, t = 0x12345 (= 74565 us): byte 2 = 1<<7 | 0x01, then 0x23, 0x45.
    raw = bytes([5, 33, 0x81, 0x23, 0x45]) + bytes([0, 0, 0x00, 0x00, 0x07])
    assert as_tuples(decode_nmnist(raw)) == [(7, 0, 0, 0), (0x12345, 5, 33, 1)]


def test_nmnist_file_round_trip(tmp_path):
    # out of order by less than a second (sorted on reading), up to the largest 23-bit time
    x, y, p, t = [0, 33, 17, 4], [1, 0, 33, 9], [1, 0, 0, 1], [7_400_000, 7_400_200,
                                                               8_388_607, 7_400_100]
    write_nmnist(tmp_path / "00001.bin", x, y, p, t)
    events = read_nmnist(tmp_path / "00001.bin")
    assert as_tuples(events) == sorted(zip(t, x, y, p, strict=True))


def test_nmnist_overflow_marker_adds_2_pow_13_to_later_events():
    marker = bytes([0, 240, 0, 0, 0])
    raw = bytes([1, 1, 0x80, 0, 50]) + marker + bytes([2, 2, 0x80, 0, 20])
    assert as_tuples(decode_nmnist(raw)) == [(50, 1, 1, 1), (2**13 + 20, 2, 2, 1)]


def test_nmnist_rejects_a_truncated_file():
    with pytest.raises(DataError, match="multiple of 5"):
        decode_nmnist(b"\x00" * 7, "Train/0/00001.bin")


# ------------------------------------------------------------------------- AEDAT 3.1
def test_aedat31_polarity_word_and_overflow_decoded_by_hand():
    # x = 100 (bits 17-31), y = 3 (bits 2-16), polarity 1 (bit 1), valid (bit 0).
    word = (100 << 17) | (3 << 2) | 0b11
    raw = AEDAT31_HEADER + aedat31_packet(1, [(word, 5)], overflow=2)
    assert as_tuples(decode_aedat31(raw)) == [((2 << 31) | 5, 100, 3, 1)]


def test_aedat31_round_trip_skips_other_packets_and_invalid_events(tmp_path):
    events = [(127, 0, 1, 10), (0, 127, 0, 11), (64, 64, 1, 12), (5, 6, 0, 2**31 + 7)]
    special = aedat31_packet(0, [(0xDEAD, 3)])  # a type-0 (special event) packet
    invalid = aedat31_packet(1, [(polarity_word(9, 9, 1, valid=0), 4)])
    write_aedat31(tmp_path / "rec.aedat", events, packet_size=3,
                  extra_packets=special + invalid)
    got = as_tuples(read_aedat31(tmp_path / "rec.aedat"))
    assert got == [(t, x, y, p) for x, y, p, t in events]


def test_aedat31_rejects_truncated_packets_and_other_versions():
    raw = AEDAT31_HEADER + aedat31_packet(1, [(polarity_word(1, 1, 1), 1)] * 3)
    with pytest.raises(DataError, match="truncated"):
        decode_aedat31(raw[:-5])
    with pytest.raises(DataError, match="AEDAT 3"):
        decode_aedat31(b"#!AER-DAT2.0\r\n")


def test_gesture_labels_csv_and_split_by_start_end(tmp_path):
    csv = tmp_path / "user01_led_labels.csv"
    write_gesture_labels(csv, [(1, 100, 200), (11, 200, 350)])
    rows = read_gesture_labels(csv)
    assert rows.tolist() == [[0, 100, 200], [10, 200, 350]]
    events = np.zeros(6, dtype=[("t", np.int64)])
    events["t"] = [50, 100, 199, 200, 349, 350]
    parts = split_gestures(events, rows)
    assert [p["t"].tolist() for p in parts] == [[100, 199], [200, 349]]  # start <= t < end


def test_gesture_labels_reject_unknown_classes(tmp_path):
    csv = tmp_path / "user01_led_labels.csv"
    write_gesture_labels(csv, [(12, 0, 1)])
    with pytest.raises(DataError, match="1-11"):
        read_gesture_labels(csv)


# ------------------------------------------------------------------------- AEDAT 2.0
def test_aedat2_dvs128_address_bits_decoded_by_hand():
    # address = y<<8 | x<<1 | p with x = 3, y = 5, p = 1; timestamp 1000; big-endian.
    raw = b"#!AER-DAT2.0\r\n" + struct.pack(">II", (5 << 8) | (3 << 1) | 1, 1000)
    assert as_tuples(decode_aedat2_dvs128(raw)) == [(1000, 3, 5, 1)]


def test_cifar10dvs_orientation_and_polarity_follow_spikingjelly(tmp_path):
    path = tmp_path / "cifar10_cat_0.aedat"
    path.write_bytes(aedat2_bytes([3, 0, 9], [5, 127, 9], [0, 1, 1], [7, 8, 9], special={2}))
    # x = 127 - y_raw, y = 127 - x_raw, p = 1 - p_raw; the external event (bit 15) is dropped.
    assert as_tuples(read_cifar10dvs(path)) == [(7, 122, 124, 1), (8, 0, 127, 0)]


def test_aedat2_rejects_a_partial_event():
    raw = b"#!AER-DAT2.0\r\n" + b"\x00" * 12
    with pytest.raises(DataError, match="8-byte"):
        decode_aedat2_dvs128(raw)


# ------------------------------------------------------------------ SpikingJelly npz
def test_spikingjelly_npz_events(tmp_path):
    write_event_npz(tmp_path / "a.npz", t=[5, 1], x=[2, 3], y=[4, 5], p=[1, 0])
    assert as_tuples(read_event_npz(tmp_path / "a.npz")) == [(1, 3, 5, 0), (5, 2, 4, 1)]
    np.savez(tmp_path / "b.npz", frames=np.zeros(3))
    with pytest.raises(DataError, match="expected keys t, x, y, p"):
        read_event_npz(tmp_path / "b.npz")
