"""Image datasets: MNIST, Fashion-MNIST (IDX files) and CIFAR-10 / CIFAR-100 (python pickles).

Every dataset is held as ``uint8 [N, C, H, W]`` and normalised per batch. train/val are a
seeded split of the official training set (:mod:`devprune.data.splits`).
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from devprune.data.base import BatchTransform, DatasetInfo, InMemoryDataset, to_unit_float
from devprune.data.fetcher import fetch, is_present, require_files
from devprune.data.idx import read_idx
from devprune.data.registry import register_dataset
from devprune.data.splits import official_part, select_indices
from devprune.data.transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip
from devprune.errors import DataError

# Per-channel mean / std of the official training sets (pixel values in [0, 1]).
STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

# File-name prefix of each official part of the IDX sets (MNIST's own names)
IDX_PREFIX = {"train": "train", "test": "t10k"}

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


def standard_augmentation(name: str) -> BatchTransform | None:
    """The training augmentation each dataset uses by default.

    CIFAR: random 32x32 crop of the 4-pixel zero-padded image + horizontal flip (the DPAP /
    SD-SNN recipe without timm's RandAugment). MNIST / Fashion-MNIST: none, as in the
    reference code; pass a transform (e.g. ``RandomCrop(28, 2)``) as ``augment`` to add one.
    """
    if name.startswith("cifar"):
        return Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(0.5)])
    return None


def preparation(name: str, normalize: bool) -> Callable[[Tensor], Tensor]:
    """Per-dataset normalisation, or plain scaling to [0, 1] (the reference's ``ToTensor``)."""
    if not normalize:
        return to_unit_float
    mean, std = STATS[name]
    return Normalize(mean, std)


def _augmentation(name: str, augment: bool | BatchTransform) -> BatchTransform | None:
    if callable(augment):
        return augment
    return standard_augmentation(name) if augment else None


def _build(
    name: str,
    info: DatasetInfo,
    images: Tensor,
    labels: Tensor,
    split: str,
    *,
    val_fraction: float,
    seed: int,
    augment: bool | BatchTransform,
    limit: int | None,
    normalize: bool,
) -> InMemoryDataset:
    indices = select_indices(split, images.shape[0], val_fraction=val_fraction, seed=seed,
                             limit=limit)
    return InMemoryDataset(
        images.index_select(0, indices),
        labels.index_select(0, indices),
        info=info,
        split=split,
        prepare=preparation(name, normalize),
        augment=_augmentation(name, augment) if split == "train" else None,
    )


# -------------------------------------------------------------------------- IDX sets
@functools.lru_cache(maxsize=8)
def _idx_tensor(path: str, size: int, mtime_ns: int) -> Tensor:
    # Keyed by size and mtime so a re-fetched file is read again; train and val share it.
    return torch.from_numpy(np.array(read_idx(path)))


def load_idx_pair(folder: Path, prefix: str) -> tuple[Tensor, Tensor]:
    """``uint8 [N, 1, H, W]`` images and ``int64 [N]`` labels of ``prefix`` (train / t10k)."""
    tensors = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        path = folder / f"{prefix}-{kind}"
        stat = path.stat()
        tensors.append(_idx_tensor(str(path), stat.st_size, stat.st_mtime_ns))
    images, labels = tensors
    if images.dim() != 3 or labels.dim() != 1:
        raise DataError(f"{folder}/{prefix}-*: expected images [N, H, W] and labels [N], got "
                        f"{tuple(images.shape)} and {tuple(labels.shape)}")
    return images.unsqueeze(1), labels.long()


def _idx_factory(name: str, info: DatasetInfo):
    def factory(
        split: str,
        root: Path,
        *,
        val_fraction: float,
        seed: int,
        augment: bool | BatchTransform,
        limit: int | None,
        normalize: bool = True,
        download: bool = False,
    ) -> InMemoryDataset:
        folder = fetch(name, root) if download else require_files(name, root)
        images, labels = load_idx_pair(folder, IDX_PREFIX[official_part(split)])
        return _build(name, info, images, labels, split, val_fraction=val_fraction, seed=seed,
                      augment=augment, limit=limit, normalize=normalize)

    return factory


def _idx_locator(name: str) -> Callable[[Path], tuple[Path, bool]]:
    return lambda root: (root / name, is_present(name, root))


# ------------------------------------------------------------------------ CIFAR sets
CIFAR_LAYOUT: dict[str, dict[str, Any]] = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "archive": "cifar-10-python.tar.gz",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "labels": b"labels",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "archive": "cifar-100-python.tar.gz",
        "train": ["train"],
        "test": ["test"],
        "labels": b"fine_labels",
    },
}

# The only globals a genuine CIFAR pickle refers to: numpy's array reconstruction, plus
# ``_codecs.encode``, which protocol-2 pickles written by Python 3 use for raw bytes. Anything
# else (a pickle can name any callable) is refused, so a planted file cannot run code.
_SAFE_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


try:  # numpy >= 2 moved the module; importing the old name only warns, so map it
    import numpy._core.multiarray as _multiarray
except ImportError:  # numpy 1.x
    import numpy.core.multiarray as _multiarray


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if module.endswith(".multiarray"):
            return getattr(_multiarray, name)
        return super().find_class(module, name)


def load_cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """``uint8 [N, 3, 32, 32]`` images and int labels of one official CIFAR pickle file."""
    try:
        with open(path, "rb") as handle:
            batch = _SafeUnpickler(handle, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"{path} is missing; the CIFAR folder is incomplete: re-extract the "
                        f"archive from {CIFAR_URL}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise DataError(f"{path} is not a valid CIFAR python batch ({err}); re-extract the "
                        f"archive from {CIFAR_URL}") from None
    return _check_cifar_batch(batch, path, label_key)


def _check_cifar_batch(batch: Any, path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(f"{path}: expected a dict with b'data' and {label_key!r}, found {keys}; "
                        f"is this the python version of the archive ({CIFAR_URL})?")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: b'data' is {data.dtype} {data.shape}, expected uint8 [N, 3072]")
    if labels.shape != (data.shape[0],):
        raise DataError(f"{path}: {labels.shape[0]} labels for {data.shape[0]} images")
    return data.reshape(-1, 3, 32, 32), labels


def find_cifar_folder(name: str, root: Path) -> Path | None:
    """``<root>/<name>/<official folder>`` or ``<root>/<official folder>``, if present."""
    official = CIFAR_LAYOUT[name]["folder"]
    for folder in (root / name / official, root / official):
        if folder.is_dir():
            return folder
    return None


def load_cifar(name: str, root: Path, part: str) -> tuple[Tensor, Tensor]:
    """All images and labels of the official ``part`` ("train" or "test") of ``name``."""
    layout = CIFAR_LAYOUT[name]
    folder = find_cifar_folder(name, root)
    if folder is None:
        raise DataError(
            f"{name} not found under {root}: download {layout['archive']} from {CIFAR_URL} and "
            f"extract it into {root / name} (so that {root / name / layout['folder']} exists), "
            f"or pass --root / set DEVPRUNE_DATA to where it is; devprune cannot fetch CIFAR")
    parts = [load_cifar_batch(folder / file, layout["labels"]) for file in layout[part]]
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    classes = 10 if name == "cifar10" else 100
    if labels.numel() and (labels.min() < 0 or labels.max() >= classes):
        raise DataError(f"{folder}: labels outside 0..{classes - 1}; is this really {name}?")
    return images, labels


def _cifar_factory(name: str, info: DatasetInfo):
    def factory(
        split: str,
        root: Path,
        *,
        val_fraction: float,
        seed: int,
        augment: bool | BatchTransform,
        limit: int | None,
        normalize: bool = True,
    ) -> InMemoryDataset:
        images, labels = load_cifar(name, root, official_part(split))
        return _build(name, info, images, labels, split, val_fraction=val_fraction, seed=seed,
                      augment=augment, limit=limit, normalize=normalize)

    return factory


def _cifar_locator(name: str) -> Callable[[Path], tuple[Path, bool]]:
    def locate(root: Path) -> tuple[Path, bool]:
        folder = find_cifar_folder(name, root)
        return (folder, True) if folder else (root / name / CIFAR_LAYOUT[name]["folder"], False)

    return locate


def _register_all() -> None:
    idx_sets = {
        "mnist": "MNIST handwritten digits, 60k/10k, 1x28x28 (fetchable)",
        "fashion-mnist": "Fashion-MNIST clothing images, 60k/10k, 1x28x28 (fetchable)",
    }
    for name, description in idx_sets.items():
        info = DatasetInfo(name, (1, 28, 28), 10, "image")
        register_dataset(name, info, _idx_factory(name, info), description=description,
                         locate=_idx_locator(name))
    cifar_sets = {"cifar10": 10, "cifar100": 100}
    for name, classes in cifar_sets.items():
        info = DatasetInfo(name, (3, 32, 32), classes, "image")
        archive = CIFAR_LAYOUT[name]["archive"]
        register_dataset(name, info, _cifar_factory(name, info),
                         description=f"{name.upper()} python batches ({archive} from {CIFAR_URL})",
                         locate=_cifar_locator(name))


_register_all()
