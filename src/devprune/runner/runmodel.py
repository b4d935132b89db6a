"""The model a run directory holds: the network its config builds, with a checkpoint's weights
and masks.

The one place that turns a run's config into a model (``train`` builds its network here) and
a checkpoint back into a model (``eval``, ``compact``, ``measure --neurobench``, ``export``),
so every reader agrees on the build arguments, on a learnt number of time steps (DPAP's time
side), on checkpoints written after an in-training shrink (scattered back to the config's
full architecture) and on where the masks are stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from devprune.compact.live import expand_checkpoint
from devprune.data import dataset_info
from devprune.errors import CheckpointError, ConfigError
from devprune.masks import MaskSet
from devprune.models import build_model
from devprune.runner.checkpoint import (
    checkpoint_config,
    checkpoint_masks,
    load_checkpoint,
    load_model_state,
    require_entries,
)
from devprune.runner.config import Config
from devprune.runner.rundir import BEST, LAST
from devprune.structure import discover

# last.pt first: the structure pruning ended with. best.pt (best validation accuracy) can be a
# checkpoint from before any pruning, whose compaction removes nothing.
CHECKPOINTS = (LAST, BEST)


def build_args(cfg: Config) -> dict[str, Any]:
    """What ``models.build_model`` needs for the run's network (the compacted-model file
    stores this record too)."""
    info = dataset_info(cfg.data.name)
    return {"model": cfg.model.name, "in_shape": list(info.in_shape),
            "num_classes": int(info.num_classes), "time_steps": cfg.model.time_steps,
            "kwargs": dict(cfg.model.kwargs)}


def build_network(build: dict[str, Any]) -> nn.Module:
    """The freshly initialised network of :func:`build_args` (a bad ``model.*`` setting is a
    ConfigError naming it)."""
    try:
        return build_model(build["model"], in_shape=tuple(build["in_shape"]),
                           num_classes=build["num_classes"], time_steps=build["time_steps"],
                           **build["kwargs"])
    except TypeError as err:
        raise ConfigError(f"model.kwargs: {err}; remove or rename the key") from err
    except (RuntimeError, MemoryError) as err:  # e.g. layer sizes past the machine's memory
        detail = " ".join(str(err).split())[:300]
        raise ConfigError(f"model: building {build['model']} with kwargs {build['kwargs']} "
                          f"failed ({type(err).__name__}: {detail}); use smaller sizes") from err


def pick_checkpoint(run: Path, which: str | None) -> Path:
    """``RUN/<which>.pt``, or (``which`` None) the first of :data:`CHECKPOINTS` present."""
    if not run.is_dir():
        raise CheckpointError(f"run directory {run} does not exist; pass a `devprune train` "
                              "output directory")
    names = [f"{which}.pt"] if which else list(CHECKPOINTS)
    for name in names:
        if (run / name).is_file():
            return run / name
    raise CheckpointError(f"{run} holds none of {names}; train the run first (or pick "
                          "--checkpoint last)")


def example_batch(in_shape: Any) -> torch.Tensor:
    """Two seeded random samples: structure discovery reads shapes only, so a run is
    restored without loading its data."""
    generator = torch.Generator().manual_seed(0)
    return torch.rand(2, *in_shape, generator=generator)


def _load_masks(model: nn.Module, example: torch.Tensor, state: dict[str, Any] | None,
                path: Path) -> MaskSet | None:
    if state is None:  # a dense run
        return None
    masks = MaskSet(discover(model, example), layers=list(state.get("masks", {})),
                    mode=state.get("mode", "default"))
    try:
        masks.load_state_dict(state)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from err
    return masks


def restore_model(cfg: Config, payload: dict[str, Any], path: Path, example: torch.Tensor,
                  device: torch.device | None = None) -> tuple[nn.Module, MaskSet | None]:
    """The network of ``cfg`` holding the checkpoint ``payload``'s weights, learnt time steps
    and masks (None: a dense run), on ``device`` (default CPU)."""
    model = build_network(build_args(cfg))
    if device is not None:
        model, example = model.to(device), example.to(device)
    # a checkpoint written after an in-training shrink, scattered into the full architecture
    payload = expand_checkpoint(model, payload, example)
    load_model_state(model, payload["model"], path, time_steps=payload.get("time_steps"))
    masks = _load_masks(model, example, checkpoint_masks(payload), path)
    if masks is not None and device is not None:
        masks.to(device)
    return model, masks


class RunModel(NamedTuple):
    """A run's checkpoint as a model: what compact, measure and export read."""

    model: nn.Module  # in eval mode
    masks: MaskSet  # all-ones for a dense run: compacting it gives back an equal model
    example: torch.Tensor  # a seeded random batch of the model's input shape
    build: dict[str, Any]  # build_args, with the learnt time steps
    path: Path  # the checkpoint read
    payload: dict[str, Any]  # its content
    cfg: Config  # the configuration it was written with


def load_run(run: Path, which: str | None = None) -> RunModel:
    """The model of ``RUN``'s last (else best; ``which``: that) checkpoint, with its masks."""
    path = pick_checkpoint(run, which)
    payload = load_checkpoint(path)
    require_entries(payload, path, ("model", "config"))
    cfg = checkpoint_config(payload, path)
    build = build_args(cfg)
    if payload.get("time_steps") is not None:  # a length learnt in training (DPAP time side)
        build["time_steps"] = int(payload["time_steps"])
    example = example_batch(build["in_shape"])
    model, masks = restore_model(cfg, payload, path, example)
    if masks is None:
        masks = MaskSet(discover(model, example))
    return RunModel(model=model.eval(), masks=masks, example=example, build=build, path=path,
                    payload=payload, cfg=cfg)
