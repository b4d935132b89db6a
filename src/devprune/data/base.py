"""In-memory datasets: every sample held in one compact tensor, batches built by indexing.

Images stay ``uint8`` in memory (60k MNIST images are 47 MB instead of 188 MB as float) and
are converted to float, augmented and normalised one *batch* at a time, which is far faster
than per-sample transforms. The same object also works with ``torch.utils.data.DataLoader``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from devprune.errors import DataError

# A batch transform maps a stored batch [B, ...] to a batch of the same layout; it draws its
# randomness from the generator it is given so a seeded loader is reproducible.
BatchTransform = Callable[[Tensor, "torch.Generator | None"], Tensor]
# Turns a stored batch (e.g. uint8 images) into the float tensor a model consumes.
Preparation = Callable[[Tensor], Tensor]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset before seeing it.

    ``in_shape`` is one sample's shape (``(C, H, W)`` for images, ``(T, C, H, W)`` for event
    frames); ``kind`` is ``"image"`` or ``"events"``.
    """

    name: str
    in_shape: tuple[int, ...]
    num_classes: int
    kind: str


def to_unit_float(batch: Tensor) -> Tensor:
    """uint8 pixels -> float in [0, 1]; float input passes through unchanged."""
    if batch.dtype == torch.uint8:
        return batch.float().div_(255.0)
    return batch.float()


class InMemoryDataset(torch.utils.data.Dataset):
    """Samples ``inputs[i]`` with integer labels ``targets[i]``, all in memory.

    ``prepare`` converts a stored batch to model input (normalisation); ``augment`` is an
    optional random batch transform applied to the *stored* batch before ``prepare`` (so a
    crop pads with black pixels, as torchvision does before ``ToTensor``).
    """

    def __init__(
        self,
        inputs: Tensor,
        targets: Tensor,
        *,
        info: DatasetInfo,
        split: str,
        prepare: Preparation = to_unit_float,
        augment: BatchTransform | None = None,
    ) -> None:
        if inputs.shape[0] != targets.shape[0]:
            raise DataError(
                f"dataset {info.name!r} ({split}): {inputs.shape[0]} inputs but "
                f"{targets.shape[0]} labels; the files on disk do not belong together"
            )
        self.inputs = inputs
        self.targets = targets.long()
        self.info = info
        self.split = split
        self.prepare = prepare
        self.augment = augment

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        x, y = self.batch(torch.tensor([index % n]))
        return x[0], int(y[0])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.info.name!r}, split={self.split!r}, "
            f"samples={len(self)}, in_shape={self.info.in_shape}, "
            f"augment={self.augment is not None})"
        )

    def batch(
        self,
        indices: Tensor,
        generator: torch.Generator | None = None,
        *,
        augment: BatchTransform | bool | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Float inputs and int64 labels of ``indices``.

        ``augment``: ``None`` or ``True`` uses the dataset's own augmentation, ``False``
        disables it, a callable replaces it. With ``device`` the compact stored batch is
        moved first and converted there (less host-to-device traffic).
        """
        x = self.inputs.index_select(0, indices)
        y = self.targets.index_select(0, indices)
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        transform = _choose_augment(self.augment, augment)
        if transform is not None:
            x = transform(x, generator)
        return self.prepare(x), y

    def class_counts(self) -> Tensor:
        """Number of samples per class (length ``info.num_classes``)."""
        return torch.bincount(self.targets, minlength=self.info.num_classes)

    def subset(self, indices: Tensor) -> InMemoryDataset:
        """A dataset over ``indices`` sharing this one's preparation and augmentation."""
        return InMemoryDataset(
            self.inputs.index_select(0, indices),
            self.targets.index_select(0, indices),
            info=self.info,
            split=self.split,
            prepare=self.prepare,
            augment=self.augment,
        )


def _choose_augment(
    own: BatchTransform | None, requested: BatchTransform | bool | None
) -> BatchTransform | None:
    if requested is None or requested is True:
        return own
    if requested is False:
        return None
    return requested
