"""Small IDX / CIFAR files written in the official formats, for the data-layer tests."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding written out by hand (independent of devprune.data.idx.encode_idx)."""
    codes = {np.dtype("uint8"): 0x08, np.dtype("int16"): 0x0B, np.dtype("float32"): 0x0D}
    code = codes[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def tiny_mnist_arrays(num_train: int = 40, num_test: int = 15) -> dict[str, np.ndarray]:
    """Four arrays shaped like MNIST's, with every class present in the training set."""
    rng = np.random.default_rng(0)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (num_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(num_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (num_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(num_test) % 10).astype(np.uint8),
    }


def write_files(folder: Path, files: dict[str, bytes], suffix: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, data in files.items():
        (folder / f"{stem}{suffix}").write_bytes(data)


def write_cifar_pickle(path: Path, batch: dict) -> None:
    """Pickle a batch dict the way the official python archives load (bytes keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(batch, handle, protocol=2)


def cifar_batch(num: int, classes: int, label_key: bytes, offset: int) -> dict:
    rng = np.random.default_rng(offset)
    batch = {
        b"batch_label": b"testing batch",
        b"data": rng.integers(0, 256, (num, 3072), dtype=np.uint8),
        label_key: [int((offset + i) % classes) for i in range(num)],
        b"filenames": [f"img_{offset + i}.png".encode() for i in range(num)],
    }
    if label_key == b"fine_labels":
        batch[b"coarse_labels"] = [label // 5 for label in batch[label_key]]
    return batch
