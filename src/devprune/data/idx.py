"""The IDX file format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/).

Layout: two zero bytes, a type code, the number of dimensions ``n``, then ``n`` big-endian
uint32 sizes, then the values in C order, big-endian. Files may be gzip-compressed and come
in two naming styles (``train-images-idx3-ubyte`` and ``train-images.idx3-ubyte``).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from devprune.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> numpy dtype (big-endian as stored).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}


def _refetch_hint(path: Path) -> str:
    return f"delete {path} and run `devprune data fetch` again (or place a good copy there)"


def read_file_bytes(path: str | os.PathLike) -> bytes:
    """The file's content, gunzipped when it is gzip-compressed (detected by magic bytes)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; run `devprune data fetch` first") from None
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise DataError(f"{path} is a corrupt or truncated gzip file ({err}); "
                        f"{_refetch_hint(path)}") from None


def parse_idx(data: bytes, source: str | os.PathLike = "<bytes>") -> np.ndarray:
    """Decode IDX ``data`` into an array of the file's shape and a native-endian dtype.

    ``source`` names the file in error messages. Truncated data, trailing bytes, a bad magic
    or an unknown type code raise :class:`DataError`.
    """
    path = Path(source)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic {data[:4]!r}); "
                        f"{_refetch_hint(path)}")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX type code 0x{code:02x}; {_refetch_hint(path)}")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{path} is truncated inside its header; {_refetch_hint(path)}")
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = IDX_DTYPES[code]
    expected = header_len + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(f"{path} is {state}: {len(data)} bytes, expected {expected} for shape "
                        f"{tuple(shape)}; {_refetch_hint(path)}")
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not."""
    return parse_idx(read_file_bytes(path), path)


def encode_idx(array: np.ndarray) -> bytes:
    """IDX bytes of ``array`` (the inverse of :func:`parse_idx`); for derived datasets."""
    native = np.asarray(array)
    key = native.dtype.newbyteorder("=")
    if key not in _CODES:
        raise DataError(f"dtype {native.dtype} has no IDX type code; use one of "
                        f"{sorted(str(d) for d in _CODES)}")
    code = _CODES[key]
    header = bytes([0, 0, code, native.ndim]) + struct.pack(f">{native.ndim}I", *native.shape)
    return header + np.ascontiguousarray(native, dtype=IDX_DTYPES[code]).tobytes()


def idx_name_variants(stem: str) -> list[str]:
    """File names under which ``stem`` (e.g. ``train-images-idx3-ubyte``) may be stored.

    Canonical name first, then the dotted style (``train-images.idx3-ubyte``), each raw and
    gzipped.
    """
    prefix, _, kind = stem.rpartition("-idx")
    dotted = f"{prefix}.idx{kind}" if prefix else stem
    names = [stem, dotted]
    return names + [f"{name}.gz" for name in names]


def find_idx_file(folder: Path, stem: str) -> Path | None:
    """The first existing file in ``folder`` holding ``stem`` in any naming style."""
    for name in idx_name_variants(stem):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None
