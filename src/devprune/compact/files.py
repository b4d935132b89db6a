"""The compacted-model file (what ``devprune compact RUN --out FILE`` writes) and its loader.

One ``torch.save`` dict of tensors and plain values, readable with ``weights_only=True``::

    {"format": "devprune-compacted", "format_version": 1,
     "build": {"model": name, "in_shape": [...], "num_classes": k, "time_steps": T|None,
               "kwargs": {...}},           # build_model arguments of the base architecture
     "architecture": architecture_record(model),
     "state_dict": model.state_dict(),
     "summary": {...}}                     # before/after parameter and unit counts

``load_compacted(path)`` is the one-line loader: it rebuilds the base model from ``build``,
resizes it with the architecture record and loads the weights. No pruning code runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from devprune.compact.record import architecture_record, rebuild
from devprune.errors import CheckpointError
from devprune.models import build_model
from devprune.utils.checksum import content_changed, sealed
from devprune.utils.io import atomic_torch_save

FILE_FORMAT = "devprune-compacted"
FILE_VERSION = 1


def save_compacted(path: str | Path, model: nn.Module, build: dict[str, Any],
                   summary: dict[str, Any] | None = None) -> None:
    """Write ``model`` (a compacted zoo model) with the ``build_model`` arguments of its
    base architecture; atomic."""
    payload = sealed({
        "format": FILE_FORMAT,
        "format_version": FILE_VERSION,
        "build": build,
        "architecture": architecture_record(model),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "summary": summary or {},
    })
    atomic_torch_save(payload, path)


def read_compacted(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; write it with `devprune compact RUN --out`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # whatever torch meets in a damaged or foreign file
        raise CheckpointError(
            f"{path} is corrupt or not a torch file ({type(err).__name__}); write it again "
            "with `devprune compact`"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise CheckpointError(
            f"{path} is not a devprune compacted model (no '{FILE_FORMAT}' marker); a whole "
            "pickled module loads with torch.load(path, weights_only=False) instead"
        )
    if payload.get("format_version") != FILE_VERSION:
        raise CheckpointError(
            f"{path} has compacted-file version {payload.get('format_version')}; this devprune "
            f"reads version {FILE_VERSION}"
        )
    if content_changed(payload):  # files of earlier versions have no checksum: accepted
        raise CheckpointError(f"{path} fails its checksum: its content changed after it was "
                              "written (disk or copy corruption); write it again with "
                              "`devprune compact`")
    return payload


def load_compacted(path: str | Path) -> nn.Module:
    """The compacted model stored at ``path``, in eval mode."""
    payload = read_compacted(path)
    build = payload["build"]
    base = build_model(build["model"], in_shape=tuple(build["in_shape"]),
                       num_classes=build["num_classes"], time_steps=build["time_steps"],
                       **build.get("kwargs", {}))
    model = rebuild(base, payload["architecture"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: weights do not fit the rebuilt architecture ({str(err).splitlines()[0]}); "
            "the file was written by another devprune version"
        ) from err
    return model.eval()
