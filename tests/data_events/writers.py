"""Event files written byte by byte in the publishers' formats, independently of devprune's
readers (only numpy and struct), so reading them back tests the readers for real."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

AEDAT31_HEADER = (
    b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n"
    b"#Start-Time: 2017-01-01 12:00:00 (TZ+0000)\r\n#!END-HEADER\r\n"
)
AEDAT2_HEADER = (
    b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n"
    b"# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n"
    b"# Timestamps tick is 1 us\r\n"
)


def nmnist_bytes(x, y, p, t) -> bytes:
    """40-bit N-MNIST records: x, y, then polarity bit + 23-bit timestamp, big-endian."""
    out = bytearray()
    for xi, yi, pi, ti in zip(x, y, p, t, strict=True):
        out += bytes([xi, yi, (pi << 7) | ((ti >> 16) & 0x7F), (ti >> 8) & 0xFF, ti & 0xFF])
    return bytes(out)


def write_nmnist(path: Path, x, y, p, t) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(nmnist_bytes(x, y, p, t))


def aedat31_packet(event_type: int, words: list[tuple[int, int]], overflow: int = 0) -> bytes:
    """One AEDAT 3.1 packet of 8-byte events (uint32 data, int32 timestamp)."""
    n = len(words)
    header = struct.pack("<hhiiiiii", event_type, 1, 8, 4, overflow, n, n, n)
    return header + b"".join(struct.pack("<Ii", data, ts) for data, ts in words)


def polarity_word(x: int, y: int, p: int, valid: int = 1) -> int:
    return (x << 17) | (y << 2) | (p << 1) | valid


def write_aedat31(path: Path, events, packet_size: int = 3, extra_packets: bytes = b"") -> None:
    """Polarity events ``(x, y, p, t)`` in packets of ``packet_size``; the timestamp's bit 31
    and above go into the packet's overflow field (one overflow value per packet)."""
    body = bytearray(extra_packets)
    for start in range(0, len(events), packet_size):
        chunk = events[start : start + packet_size]
        overflow = chunk[0][3] >> 31
        assert all(e[3] >> 31 == overflow for e in chunk)
        words = [(polarity_word(x, y, p), t & 0x7FFFFFFF) for x, y, p, t in chunk]
        body += aedat31_packet(1, words, overflow)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(AEDAT31_HEADER + bytes(body))


def write_gesture_labels(path: Path, rows: list[tuple[int, int, int]]) -> None:
    lines = ["class,startTime_usec,endTime_usec"] + [f"{c},{s},{e}" for c, s, e in rows]
    path.write_text("\r\n".join(lines) + "\r\n")


def aedat2_bytes(raw_x, raw_y, raw_p, t, special=()) -> bytes:
    """DVS128 AEDAT 2.0: big-endian (address, timestamp); address = y<<8 | x<<1 | p, plus
    bit 15 for the indices in ``special`` (external events)."""
    words = []
    for i, (x, y, p, ti) in enumerate(zip(raw_x, raw_y, raw_p, t, strict=True)):
        address = (y << 8) | (x << 1) | p | (0x8000 if i in special else 0)
        words += [address, ti]
    return AEDAT2_HEADER + np.asarray(words, dtype=">u4").tobytes()


def write_event_npz(path: Path, t, x, y, p) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, t=np.asarray(t), x=np.asarray(x), y=np.asarray(y), p=np.asarray(p))
