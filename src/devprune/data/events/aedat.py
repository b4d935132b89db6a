"""Readers for the jAER / iniVation AEDAT 2.0 and 3.1 file formats (polarity events only).

Both start with ASCII header lines beginning with ``#``.

AEDAT 3.1 (DVS128 Gesture): the header ends with ``#!END-HEADER\\r\\n``; then packets, each a
28-byte little-endian header (int16 type, int16 source, int32 event size, int32 timestamp
offset, int32 timestamp overflow, int32 capacity, int32 number, int32 valid) followed by
``capacity * size`` bytes. Polarity packets (type 1) hold 8-byte events: a uint32 with the
valid mark in bit 0, polarity in bit 1, y in bits 2-16, x in bits 17-31, then an int32
timestamp in microseconds; the full time is ``overflow << 31 | timestamp``. Events whose valid
bit is 0 were invalidated by the recording software and are skipped.

AEDAT 2.0 (CIFAR10-DVS): after the header, big-endian pairs ``uint32 address, uint32
timestamp`` (microseconds). For a DVS128 address, bit 0 is the raw polarity, bits 1-7 x,
bits 8-14 y; bit 15 flags jAER's external (non-pixel) events, which are skipped.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from devprune.data.events.types import make_events
from devprune.errors import DataError

AEDAT31_END_HEADER = b"#!END-HEADER\r\n"
PACKET_HEADER = struct.Struct("<hhiiiiii")
POLARITY_EVENT_TYPE = 1
POLARITY_EVENT_SIZE = 8
POLARITY_DTYPE = np.dtype([("data", "<u4"), ("ts", "<i4")])
DVS128_SPECIAL_BIT = 0x8000


def decode_aedat31(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Polarity events of an AEDAT 3.1 file (other packet types are skipped)."""
    if not raw.startswith(b"#!AER-DAT3"):
        raise DataError(f"{source}: not an AEDAT 3.x file (first line {raw[:20]!r})")
    end = raw.find(AEDAT31_END_HEADER)
    if end < 0:
        raise DataError(f"{source}: AEDAT 3.1 header has no '#!END-HEADER' line; file truncated?")
    chunks, overflows = _polarity_packets(raw, end + len(AEDAT31_END_HEADER), source)
    if not chunks:
        return make_events(*(np.zeros(0, dtype=np.int64) for _ in range(4)))
    events = np.frombuffer(b"".join(chunks), dtype=POLARITY_DTYPE)
    overflow = np.repeat(np.asarray([o for o, _ in overflows], dtype=np.int64),
                         [n for _, n in overflows])
    data = events["data"].astype(np.int64)
    valid = (data & 1) == 1
    t = (overflow << 31) | events["ts"].astype(np.int64)
    data, t = data[valid], t[valid]
    return make_events(t, (data >> 17) & 0x7FFF, (data >> 2) & 0x7FFF, (data >> 1) & 1)


def _polarity_packets(
    raw: bytes, offset: int, source: str
) -> tuple[list[memoryview], list[tuple[int, int]]]:
    """Byte ranges of the polarity packets' events and each packet's (overflow, count)."""
    view = memoryview(raw)
    chunks: list[memoryview] = []
    overflows: list[tuple[int, int]] = []
    while offset < len(raw):
        if offset + PACKET_HEADER.size > len(raw):
            raise DataError(f"{source}: truncated AEDAT 3.1 packet header at byte {offset}")
        etype, _src, size, _tsoff, overflow, capacity, number, _valid = PACKET_HEADER.unpack_from(
            raw, offset
        )
        start = offset + PACKET_HEADER.size
        offset = start + capacity * size
        if offset > len(raw) or size <= 0 or number > capacity:
            raise DataError(f"{source}: corrupt or truncated AEDAT 3.1 packet at byte {start}")
        if etype == POLARITY_EVENT_TYPE:
            if size != POLARITY_EVENT_SIZE:
                raise DataError(f"{source}: polarity events of {size} bytes, expected 8")
            chunks.append(view[start : start + number * size])
            overflows.append((overflow, number))
    return chunks, overflows


def read_aedat31(path: str | Path) -> np.ndarray:
    path = Path(path)
    return decode_aedat31(path.read_bytes(), str(path))


def skip_ascii_header(raw: bytes) -> int:
    """Offset of the first byte after the leading ``#`` lines."""
    offset = 0
    while raw.startswith(b"#", offset):
        newline = raw.find(b"\n", offset)
        if newline < 0:
            return len(raw)
        offset = newline + 1
    return offset


def decode_aedat2_dvs128(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Raw DVS128 events of an AEDAT 2.0 file: sensor x, y and polarity bit, as recorded."""
    body = raw[skip_ascii_header(raw) :]
    if len(body) % 8:
        raise DataError(f"{source}: AEDAT 2.0 body of {len(body)} bytes is not a whole number "
                        "of 8-byte events; file truncated?")
    words = np.frombuffer(body, dtype=">u4").astype(np.int64)
    address, t = words[0::2], words[1::2]
    pixel = (address & DVS128_SPECIAL_BIT) == 0
    address, t = address[pixel], t[pixel]
    return make_events(t, (address >> 1) & 0x7F, (address >> 8) & 0x7F, address & 1)


def read_aedat2_dvs128(path: str | Path) -> np.ndarray:
    path = Path(path)
    return decode_aedat2_dvs128(path.read_bytes(), str(path))
