"""Derived event datasets: MNIST / Fashion-MNIST turned into DVS event streams here.

``mnist-dvs-derived`` and ``fashion-dvs-derived`` run the saccade DVS simulation of
:mod:`.dvs_sim` on the real images (fetched with ``devprune data fetch mnist``), integrate
the events into frames ``[T, 2, 32, 32]`` exactly as the recorded datasets are integrated,
and cache the frames. They are synthetic stand-ins for N-MNIST with the same frame shape,
for experiments on machines that cannot obtain the recorded datasets; results on them are
never N-MNIST results.

Frames are cached (:class:`~devprune.data.events.cache.FrameCache`, chunks of 1000 source
images under ``<root>/<name>/frames_cache/<train|test>/<sim key>-<frame key>/``), so a run
on a subset simulates and stores only that subset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from devprune.data.base import BatchTransform, DatasetInfo, InMemoryDataset
from devprune.data.events.cache import FrameCache
from devprune.data.events.datasets import frame_spec, frames_to_float, reject_normalize
from devprune.data.events.dvs_sim import SaccadeConfig, simulate_events
from devprune.data.events.frames import FrameSpec, compact_dtype, integrate_batch, widen_to_hold
from devprune.data.fetcher import is_present, require_files
from devprune.data.registry import register_dataset
from devprune.data.splits import official_part, select_indices
from devprune.data.vision import IDX_PREFIX, load_idx_pair

SOURCES = {"mnist-dvs-derived": "mnist", "fashion-dvs-derived": "fashion-mnist"}
DEFAULT_FRAMES = FrameSpec(8, "number")
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


def cached_derive(images: Tensor, wanted: Sequence[int], cfg: SaccadeConfig, spec: FrameSpec,
                  cache: FrameCache | None) -> np.ndarray:
    """Frames of source images ``wanted``: cached ones read, the others simulated and added."""
    keys = [str(i) for i in range(images.shape[0])]
    size = -(-cfg.canvas // spec.downsample)
    if cache is None:
        out = np.zeros((len(wanted), spec.time_steps, 2, size, size), dtype=np.uint8)
        found = np.zeros(len(wanted), dtype=bool)
    else:
        out, found = cache.load(wanted, keys)
    todo = np.unique(np.asarray(wanted, dtype=np.int64)[~found])
    if todo.size:
        frames = derive_frames(images[torch.from_numpy(todo)], cfg, spec)
        rows = np.nonzero(~found)[0]
        out = widen_to_hold(out, frames)
        out[rows] = frames[np.searchsorted(todo, np.asarray(wanted)[rows])]
        if cache is not None:
            cache.store(todo, keys, frames)
    return compact_dtype(out)


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
        normalize: bool = False,
    ) -> InMemoryDataset:
        reject_normalize(name, normalize)
        spec = frame_spec(DEFAULT_FRAMES, time_steps, frame_method, window_us)
        cfg = SaccadeConfig()
        official = official_part(split)
        images, labels = load_idx_pair(require_files(source, root), IDX_PREFIX[official])
        indices = select_indices(split, images.shape[0], val_fraction=val_fraction, seed=seed,
                                 limit=limit)
        folder = root / name / "frames_cache" / official / f"{cfg.key()}-{spec.key()}"
        frame_cache = FrameCache(folder, (spec.time_steps, 2, cfg.canvas, cfg.canvas))
        frames = cached_derive(images[:, 0], indices.tolist(), cfg, spec,
                               frame_cache if cache else None)
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
