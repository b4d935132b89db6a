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

Every header, packet field and event is checked (see ``types.check_stream``): a malformed
header, a negative or impossible count or size, a negative timestamp or a coordinate outside
the sensor is a one-line DataError naming the file and the byte offset. Every loop advances
by at least one packet or line and is bounded by the file's length.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from devprune.data.events.types import SensorSize, check_stream, make_events
from devprune.errors import DataError

AEDAT31_END_HEADER = b"#!END-HEADER\r\n"
PACKET_HEADER = struct.Struct("<hhiiiiii")
POLARITY_EVENT_TYPE = 1
POLARITY_EVENT_SIZE = 8
POLARITY_DTYPE = np.dtype([("data", "<u4"), ("ts", "<i4")])
DVS128_SPECIAL_BIT = 0x8000
MAX_HEADER_BYTES = 4 * 2**20  # far above any recorder's header
MAX_EVENT_SIZE = 1024  # bytes of one event of any AEDAT 3.1 type


def decode_aedat31(raw: bytes, source: str = "<bytes>",
                   sensor: SensorSize | None = None) -> np.ndarray:
    """Polarity events of an AEDAT 3.1 file (other packet types are skipped); ``sensor``:
    refuse coordinates outside it."""
    if not raw.startswith(b"#!AER-DAT3"):
        raise DataError(f"{source}: not an AEDAT 3.x file (first line {raw[:20]!r}, at byte 0)")
    end = raw.find(AEDAT31_END_HEADER, 0, MAX_HEADER_BYTES)
    if end < 0:
        raise DataError(f"{source}: AEDAT 3.1 header has no '#!END-HEADER' line in its first "
                        f"{min(len(raw), MAX_HEADER_BYTES):,} bytes; file truncated or corrupt?")
    packets = _polarity_packets(raw, end + len(AEDAT31_END_HEADER), source)
    if not packets:
        return make_events(*(np.zeros(0, dtype=np.int64) for _ in range(4)))
    events = np.concatenate([np.frombuffer(raw, POLARITY_DTYPE, n, start)
                             for start, _, n in packets])
    counts = [n for _, _, n in packets]
    overflow = np.repeat(np.asarray([o for _, o, _ in packets], dtype=np.int64), counts)
    data = events["data"].astype(np.int64)
    valid = (data & 1) == 1
    t = (overflow << 31) | events["ts"].astype(np.int64)
    x, y, p = (data >> 17) & 0x7FFF, (data >> 2) & 0x7FFF, (data >> 1) & 1
    t, x, y, p = t[valid], x[valid], y[valid], p[valid]
    check_stream(t, x, y, source, sensor=sensor,
                 where=lambda i: _aedat31_byte(packets, int(np.flatnonzero(valid)[i])))
    return make_events(t, x, y, p)


def _aedat31_byte(packets: list[tuple[int, int, int]], index: int) -> str:
    """Where event ``index`` (counted over the polarity packets) starts in the file."""
    for start, _, count in packets:
        if index < count:
            return f"byte {start + index * POLARITY_EVENT_SIZE}"
        index -= count
    return "the end of the file"


def _polarity_packets(raw: bytes, offset: int, source: str) -> list[tuple[int, int, int]]:
    """(first event's byte, timestamp overflow, event count) of every polarity packet."""
    packets: list[tuple[int, int, int]] = []
    for _ in range(len(raw) // PACKET_HEADER.size + 1):  # each packet takes >= 28 bytes
        if offset >= len(raw):
            return packets
        if offset + PACKET_HEADER.size > len(raw):
            raise DataError(f"{source}: truncated AEDAT 3.1 packet header at byte {offset}")
        etype, _src, size, tsoff, overflow, capacity, number, valid = (
            PACKET_HEADER.unpack_from(raw, offset))
        start = offset + PACKET_HEADER.size
        _check_packet(source, offset, len(raw) - start, size=size, tsoff=tsoff,
                      overflow=overflow, capacity=capacity, number=number, valid=valid)
        if etype == POLARITY_EVENT_TYPE:
            if size != POLARITY_EVENT_SIZE:
                raise DataError(f"{source}: polarity packet at byte {offset} has events of "
                                f"{size} bytes, expected {POLARITY_EVENT_SIZE}")
            if number:
                packets.append((start, overflow, number))
        offset = start + capacity * size
    raise DataError(f"{source}: AEDAT 3.1 packets do not end; file corrupt")  # unreachable


def _check_packet(source: str, at: int, left: int, **fields: int) -> None:
    """Refuse a packet header whose sizes or counts are negative, inconsistent or larger
    than what is left of the file."""
    size, capacity, number = fields["size"], fields["capacity"], fields["number"]
    problem = None
    if not 0 < size <= MAX_EVENT_SIZE or not 0 <= fields["tsoff"] < size:
        problem = f"event size {size} / timestamp offset {fields['tsoff']}"
    elif capacity < 0 or not 0 <= number <= capacity or not 0 <= fields["valid"] <= number:
        problem = (f"counts capacity={capacity}, number={number}, valid={fields['valid']} "
                   "(need 0 <= valid <= number <= capacity)")
    elif fields["overflow"] < 0:
        problem = f"timestamp overflow {fields['overflow']}"
    elif capacity * size > left:
        problem = (f"{capacity} events of {size} bytes but only {left:,} bytes left; file "
                   "truncated")
    if problem:
        raise DataError(f"{source}: corrupt AEDAT 3.1 packet header at byte {at}: {problem}")


def read_aedat31(path: str | Path, sensor: SensorSize | None = None) -> np.ndarray:
    path = Path(path)
    return decode_aedat31(path.read_bytes(), str(path), sensor)


def skip_ascii_header(raw: bytes, source: str = "<bytes>") -> int:
    """Offset of the first byte after the leading ``#`` lines; a header line without end or
    a header longer than MAX_HEADER_BYTES is a DataError."""
    offset = 0
    while raw.startswith(b"#", offset):
        newline = raw.find(b"\n", offset, MAX_HEADER_BYTES)
        if newline < 0:
            raise DataError(f"{source}: header line at byte {offset} has no end within the "
                            f"first {MAX_HEADER_BYTES:,} bytes; file truncated or corrupt")
        offset = newline + 1  # every line moves on by at least one byte
    return offset


def decode_aedat2_dvs128(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Raw DVS128 events of an AEDAT 2.0 file: sensor x, y and polarity bit, as recorded."""
    if not raw.startswith(b"#!AER-DAT2"):
        raise DataError(f"{source}: not an AEDAT 2.0 file (first line {raw[:20]!r}, at byte "
                        "0; expected '#!AER-DAT2.0')")
    head = skip_ascii_header(raw, source)
    body = raw[head:]
    if len(body) % 8:
        raise DataError(f"{source}: AEDAT 2.0 body of {len(body)} bytes from byte {head} is not "
                        "a whole number of 8-byte events; file truncated?")
    words = np.frombuffer(body, dtype=">u4").astype(np.int64)
    address, t = words[0::2], words[1::2]
    pixel = (address & DVS128_SPECIAL_BIT) == 0
    address, t = address[pixel], t[pixel]
    x, y = (address >> 1) & 0x7F, (address >> 8) & 0x7F
    check_stream(t, x, y, source,
                 where=lambda i: f"byte {head + 8 * int(np.flatnonzero(pixel)[i])}")
    return make_events(t, x, y, address & 1)


def read_aedat2_dvs128(path: str | Path) -> np.ndarray:
    path = Path(path)
    return decode_aedat2_dvs128(path.read_bytes(), str(path))
