"""IDX parsing: raw and gzipped files, both naming styles, corrupt and truncated input."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from devprune.data.idx import encode_idx, find_idx_file, idx_name_variants, parse_idx, read_idx
from devprune.errors import DataError
from tests.data.data_helpers import idx_bytes


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_raw_and_gz(tmp_path, compress):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(images)
    path = tmp_path / ("x.gz" if compress else "x")
    path.write_bytes(gzip.compress(data) if compress else data)
    out = read_idx(path)
    assert out.shape == (2, 3, 4)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)


@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_multibyte_types_are_big_endian(dtype):
    values = np.array([[1, -2, 300], [4, 5, -600]], dtype=dtype)
    out = parse_idx(idx_bytes(values))
    assert out.dtype == np.dtype(dtype)  # native byte order, same values
    np.testing.assert_array_equal(out, values)


def test_encode_idx_round_trips_and_matches_the_format():
    labels = np.array([7, 2, 1, 0], dtype=np.uint8)
    encoded = encode_idx(labels)
    assert encoded == idx_bytes(labels)
    assert encoded[:4] == b"\x00\x00\x08\x01"
    np.testing.assert_array_equal(parse_idx(encoded), labels)


def test_truncated_file_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((5, 28, 28), dtype=np.uint8))[:-100])
    with pytest.raises(DataError) as err:
        read_idx(path)
    message = str(err.value)
    assert str(path) in message
    assert "truncated" in message
    assert "delete" in message and "devprune data fetch" in message


def test_trailing_bytes_are_rejected():
    with pytest.raises(DataError, match="longer than its header"):
        parse_idx(idx_bytes(np.zeros(3, dtype=np.uint8)) + b"\x00")


def test_bad_magic_and_type_code(tmp_path):
    with pytest.raises(DataError, match="not an IDX file"):
        parse_idx(b"PK\x03\x04 something else")
    with pytest.raises(DataError, match="unknown IDX type code 0x07"):
        parse_idx(b"\x00\x00\x07\x01\x00\x00\x00\x01\x00")


def test_corrupt_gzip_is_a_data_error(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(1000, dtype=np.uint8)))[:30])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_idx(path)


def test_missing_file_says_to_fetch(tmp_path):
    with pytest.raises(DataError, match="devprune data fetch"):
        read_idx(tmp_path / "nope")


def test_both_naming_styles_are_found(tmp_path):
    stem = "train-images-idx3-ubyte"
    assert idx_name_variants(stem) == [
        "train-images-idx3-ubyte", "train-images.idx3-ubyte",
        "train-images-idx3-ubyte.gz", "train-images.idx3-ubyte.gz",
    ]
    assert find_idx_file(tmp_path, stem) is None
    (tmp_path / "train-images.idx3-ubyte.gz").write_bytes(b"x")
    assert find_idx_file(tmp_path, stem) == tmp_path / "train-images.idx3-ubyte.gz"
    (tmp_path / stem).write_bytes(b"x")
    assert find_idx_file(tmp_path, stem) == tmp_path / stem  # canonical name preferred
