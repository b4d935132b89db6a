"""Derived event datasets: MNIST / Fashion-MNIST turned into DVS event streams here.

``mnist-dvs-derived`` and ``fashion-dvs-derived`` run the saccade DVS simulation of
:mod:`.dvs_sim` on the real images (fetched with ``devprune data fetch mnist``), integrate
the events into frames ``[T, 2, 32, 32]`` exactly as the recorded datasets are integrated,
and cache the frames. They are synthetic stand-ins for N-MNIST with the same frame shape,
for experiments on machines that cannot obtain the recorded datasets; results on them are
never N-MNIST results.

Frames are cached in chunks of 1000 source images
(``<root>/<name>/frames_cache/<train|test>/<sim key>-<frame key>/chunk_NNNN.npz``, holding
the indices and frames of the images simulated so far), so a run on a subset simulates and
stores only that subset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from devprune.data.base import BatchTransform, DatasetInfo, InMemoryDataset
from devprune.data.events.datasets import frames_to_float
from devprune.data.events.dvs_sim import SaccadeConfig, simulate_events
from devprune.data.events.frames import FrameSpec, compact_dtype, integrate_batch
from devprune.data.fetcher import is_present, require_files
from devprune.data.registry import register_dataset
from devprune.data.splits import select_indices
from devprune.data.vision import load_idx_pair
from devprune.errors import DataError
from devprune.utils.io import atomic_writer

SOURCES = {"mnist-dvs-derived": "mnist", "fashion-dvs-derived": "fashion-mnist"}
DEFAULT_FRAMES = FrameSpec(8, "number")
CHUNK = 1000
SIM_BATCH = 500  # images simulated together: bounds the event arrays to a few 10 MB


def derive_frames(images: Tensor, cfg: SaccadeConfig, spec: FrameSpec) -> np.ndarray:
    """Frames ``[N, T, 2, H, W]`` (compact integer dtype) of ``uint8 [N, H, W]`` images."""
    out = []
    for start in range(0, images.shape[0], SIM_BATCH):
        batch = images[start : start + SIM_BATCH].float() / 255.0
        sample, events = simulate_events(batch, cfg)
        out.append(integrate_batch(sample, events, batch.shape[0], cfg.canvas, cfg.canvas,
                                   spec))
    if not out:
        size = -(-cfg.canvas // spec.downsample)
        return np.zeros((0, spec.time_steps, 2, size, size), dtype=np.uint8)
    return compact_dtype(np.concatenate(out))


class ChunkedFrameStore:
    """Frames of a source image set, computed on demand and cached per chunk of images.

    A chunk file holds only the images already simulated (their indices and frames), so a
    run on a random subset writes and reads little.
    """

    def __init__(self, folder: Path | None, images: Tensor, cfg: SaccadeConfig,
                 spec: FrameSpec) -> None:
        self.folder, self.images, self.cfg, self.spec = folder, images, cfg, spec
        self.simulated = 0  # images simulated by this store (not read from the cache)

    def frames(self, wanted: Sequence[int]) -> np.ndarray:
        """Frames ``[len(wanted), T, 2, H, W]`` of the source images ``wanted``."""
        wanted_arr = np.asarray(wanted, dtype=np.int64)
        known = {int(c): self._read(int(c)) for c in np.unique(wanted_arr // CHUNK)}
        have = {c * CHUNK + int(i) for c, (index, _) in known.items() for i in index}
        todo = np.array(sorted(set(wanted_arr.tolist()) - have), dtype=np.int64)
        if todo.size:
            new = derive_frames(self.images[torch.from_numpy(todo)], self.cfg, self.spec)
            self.simulated += int(todo.size)
            for chunk in np.unique(todo // CHUNK):
                rows = todo // CHUNK == chunk
                known[int(chunk)] = self._merge(int(chunk), known[int(chunk)],
                                                todo[rows] - chunk * CHUNK, new[rows])
        out = np.zeros((len(wanted_arr), *self._sample_shape()), dtype=np.int32)
        for chunk, (index, frames) in known.items():
            position = np.full(CHUNK, -1)
            position[index] = np.arange(len(index))
            rows = np.nonzero(wanted_arr // CHUNK == chunk)[0]
            out[rows] = frames[position[wanted_arr[rows] - chunk * CHUNK]]
        return compact_dtype(out)

    def _sample_shape(self) -> tuple[int, int, int, int]:
        size = -(-self.cfg.canvas // self.spec.downsample)
        return self.spec.time_steps, 2, size, size

    def _path(self, chunk: int) -> Path | None:
        return None if self.folder is None else self.folder / f"chunk_{chunk:04d}.npz"

    def _read(self, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        path = self._path(chunk)
        if path is None or not path.is_file():
            return np.zeros(0, np.int64), np.zeros((0, *self._sample_shape()), np.uint8)
        try:
            with np.load(path) as archive:
                index, frames = archive["index"], archive["frames"]
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"derived frame cache {path} is unreadable ({err}); delete it "
                            "to rebuild") from err
        if frames.shape != (len(index), *self._sample_shape()):
            raise DataError(f"derived frame cache {path} has the wrong shape; delete it")
        return index, frames

    def _merge(self, chunk: int, old: tuple[np.ndarray, np.ndarray], index: np.ndarray,
               frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        merged_index = np.concatenate([old[0], index])
        merged = compact_dtype(np.concatenate([old[1].astype(np.int32),
                                               frames.astype(np.int32)]))
        path = self._path(chunk)
        if path is not None:
            with atomic_writer(path, "wb") as handle:
                np.savez_compressed(handle, index=merged_index, frames=merged)
        return merged_index, merged


def _factory(name: str):
    source = SOURCES[name]

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
        cache: bool = True,
    ) -> InMemoryDataset:
        spec = FrameSpec(DEFAULT_FRAMES.time_steps if time_steps is None else int(time_steps),
                         frame_method or DEFAULT_FRAMES.method, window_us)
        cfg = SaccadeConfig()
        official = "test" if split == "test" else "train"
        images, labels = load_idx_pair(require_files(source, root),
                                       "t10k" if official == "test" else "train")
        indices = select_indices(split, images.shape[0], val_fraction=val_fraction, seed=seed,
                                 limit=limit)
        folder = root / name / "frames_cache" / official / f"{cfg.key()}-{spec.key()}"
        store = ChunkedFrameStore(folder if cache else None, images[:, 0], cfg, spec)
        frames = store.frames(indices.tolist())
        info = replace(derived_info(name), in_shape=tuple(frames.shape[1:]))
        return InMemoryDataset(
            torch.from_numpy(frames), labels.index_select(0, indices), info=info, split=split,
            prepare=frames_to_float, augment=augment if callable(augment) else None,
        )

    return factory


def derived_info(name: str) -> DatasetInfo:
    size = SaccadeConfig().canvas
    return DatasetInfo(name, (DEFAULT_FRAMES.time_steps, 2, size, size), 10, "events")


def _locator(name: str):
    def locate(root: Path) -> tuple[Path, bool]:
        return root / SOURCES[name], is_present(SOURCES[name], root)

    return locate


def _register_all() -> None:
    for name, source in SOURCES.items():
        register_dataset(
            name, derived_info(name), _factory(name),
            description=f"DERIVED events: saccade DVS simulation of real {source} images "
                        "(not N-MNIST); frames [T, 2, 32, 32]",
            locate=_locator(name),
        )


_register_all()
