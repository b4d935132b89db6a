"""Registers the on-disk event datasets: ``nmnist``, ``dvs-gesture``, ``cifar10-dvs``.

Each split is decoded into frames once (cached on disk under
``<root>/<name>/frames_cache/``) and held in memory as a compact integer tensor
``[N, T, 2, H, W]``; batches become float event counts. Files are read from
``<root>/<name>/``; nothing is downloaded (see docs/NEUROMORPHIC.md for where to put them).

Factory options (``get_dataset(..., time_steps=20, frame_method="number", ...)``):
``time_steps``, ``frame_method`` ("number", "time" or "window"), ``window_us``,
``downsample`` (integer spatial factor), ``normalize`` (only False: frames stay counts),
``cache`` (False: neither read nor write the frame
cache), ``cache_dir`` (instead of ``<root>/<name>/frames_cache``; chunks go to
``<cache_dir>/<train|test>/<frame key>/chunk_NNNN.npz``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from devprune.data.base import BatchTransform, DatasetInfo, InMemoryDataset
from devprune.data.events import cifar10dvs, gesture, nmnist
from devprune.data.events.augment import gesture_augmentation
from devprune.data.events.cache import FrameCache
from devprune.data.events.frames import FrameSpec
from devprune.data.events.pipeline import EventDatasetSpec, load_frames
from devprune.data.registry import register_dataset
from devprune.data.splits import official_part, select_indices
from devprune.errors import ConfigError, DataError

EVENT_DATASETS: dict[str, EventDatasetSpec] = {
    spec.name: spec
    for spec in (
        # The reference N-MNIST recipe: T = 20 frames by event count, 34x34 cropped to 32x32.
        EventDatasetSpec("nmnist", nmnist.SENSOR, 10, nmnist.nmnist_groups,
                         FrameSpec(20, "number"), crop=(32, 32)),
        # 64 frames as both reference codes build (DR simulates only the first 32: use the
        # model's time_steps=32 for that).
        EventDatasetSpec("dvs-gesture", gesture.SENSOR, gesture.NUM_CLASSES,
                         gesture.gesture_groups, FrameSpec(64, "number")),
        EventDatasetSpec("cifar10-dvs", cifar10dvs.SENSOR, len(cifar10dvs.CLASSES),
                         cifar10dvs.cifar10dvs_groups, FrameSpec(10, "number")),
    )
}

DESCRIPTIONS = {
    "nmnist": "N-MNIST (publisher's .bin files; 34x34 cropped to 32x32; frames by event count)",
    "dvs-gesture": "DVS128 Gesture (publisher's AEDAT 3.1 + labels csv; 11 classes; 128x128)",
    "cifar10-dvs": "CIFAR10-DVS (AEDAT 2.0 class folders; 90/10 split per class; 128x128)",
}


def frames_to_float(batch: Tensor) -> Tensor:
    """Stored integer counts -> float32 counts (the value each frame pixel feeds the SNN)."""
    return batch.float()


def reject_normalize(name: str, normalize: bool) -> None:
    """Event frames are raw counts, as the reference feeds them; ``normalize: false`` is
    accepted so configs shared with image datasets (which default to it) work unchanged."""
    if normalize:
        raise ConfigError(f"dataset {name!r}: event frames are event counts and are not "
                          "normalised; drop data.options.normalize")


def frame_spec(
    default: FrameSpec, time_steps: int | None, frame_method: str | None,
    window_us: int | None, downsample: int = 1,
) -> FrameSpec:
    """The frames a dataset's options ask for; an option not given keeps ``default``'s."""
    return FrameSpec(
        time_steps=default.time_steps if time_steps is None else int(time_steps),
        method=default.method if frame_method is None else frame_method,
        window_us=window_us,
        downsample=int(downsample),
    )


def _augmentation(name: str, spec: FrameSpec, dataset: EventDatasetSpec,
                  augment: bool | BatchTransform) -> BatchTransform | None:
    if callable(augment):
        return augment
    if augment and name == "dvs-gesture":
        return gesture_augmentation(dataset.frame_shape(spec)[-1])
    return None  # N-MNIST / CIFAR10-DVS: the reference trains without augmentation


def _factory(name: str):
    dataset = EVENT_DATASETS[name]

    def factory(
        split: str,
        root: Path,
        *,
        val_fraction: float,
        seed: int,
        augment: bool | BatchTransform,
        limit: int | None,
        time_steps: int | None = None,
        frame_method: str | None = None,
        window_us: int | None = None,
        downsample: int = 1,
        cache: bool = True,
        normalize: bool = False,
        cache_dir: str | Path | None = None,
    ) -> InMemoryDataset:
        reject_normalize(name, normalize)
        spec = frame_spec(dataset.default_frames, time_steps, frame_method, window_us, downsample)
        folder = root / name
        official = official_part(split)
        groups = dataset.list_groups(folder, official)
        num_samples = sum(len(g.keys) for g in groups)
        if num_samples == 0:
            raise DataError(f"{name}: no {official} samples found in {folder}; "
                            "see docs/NEUROMORPHIC.md for the expected layout")
        indices = select_indices(split, num_samples, val_fraction=val_fraction, seed=seed,
                                 limit=limit)
        frame_cache = None
        if cache:
            cache_root = Path(cache_dir) if cache_dir is not None else folder / "frames_cache"
            frame_cache = FrameCache(cache_root / official / dataset.cache_key(spec),
                                     dataset.frame_shape(spec))
        frames, labels = load_frames(dataset, groups, indices.tolist(), spec, frame_cache)
        info = replace(dataset_infos()[name], in_shape=dataset.frame_shape(spec))
        return InMemoryDataset(
            torch.from_numpy(frames), torch.from_numpy(labels), info=info, split=split,
            prepare=frames_to_float,
            augment=_augmentation(name, spec, dataset, augment) if split == "train" else None,
        )

    return factory


def dataset_infos() -> dict[str, DatasetInfo]:
    return {
        name: DatasetInfo(name, spec.frame_shape(spec.default_frames), spec.num_classes,
                          "events")
        for name, spec in EVENT_DATASETS.items()
    }


def _locator(name: str):
    def locate(root: Path) -> tuple[Path, bool]:
        folder = root / name
        try:
            present = bool(EVENT_DATASETS[name].list_groups(folder, "test"))
        except (DataError, OSError):
            present = False
        return folder, present

    return locate


def _register_all() -> None:
    for name, info in dataset_infos().items():
        register_dataset(name, info, _factory(name), description=DESCRIPTIONS[name],
                         locate=_locator(name))


_register_all()
