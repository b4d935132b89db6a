"""The architecture record: per-module tensor shapes and size attributes of a compacted
model, as plain JSON-able data, and :func:`rebuild`, which resizes a freshly built model of
the same architecture to those shapes so the compacted ``state_dict`` loads into it.

This is the save/load path that needs no pickled classes and no pruning code::

    record = architecture_record(small)                 # JSON-able dict
    model = rebuild(build_model(...), record)           # same classes, compacted sizes
    model.load_state_dict(small.state_dict())
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from devprune.errors import CheckpointError
from devprune.kinds import SIZE_ATTRIBUTES

RECORD_FORMAT = "devprune-architecture"
RECORD_VERSION = 1


def _class_name(module: nn.Module) -> str:
    return f"{type(module).__module__}.{type(module).__qualname__}"


def _own_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    own = dict(module.named_parameters(recurse=False)) | dict(module.named_buffers(recurse=False))
    return {name: t for name, t in own.items() if t is not None}


def architecture_record(model: nn.Module) -> dict[str, Any]:
    """``{"format", "version", "modules": {name: {"class", "tensors", "sizes"}}}`` for every
    module that owns a parameter or buffer."""
    modules: dict[str, Any] = {}
    for name, module in model.named_modules():
        tensors = _own_tensors(module)
        if not tensors:
            continue
        modules[name] = {
            "class": _class_name(module),
            "tensors": {k: list(t.shape) for k, t in tensors.items()},
            "sizes": {a: getattr(module, a) for a in SIZE_ATTRIBUTES
                      if isinstance(getattr(module, a, None), int)},
        }
    return {"format": RECORD_FORMAT, "version": RECORD_VERSION, "modules": modules}


def _check_record(record: dict[str, Any]) -> None:
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise CheckpointError(
            f"not a devprune architecture record (no '{RECORD_FORMAT}' marker); pass the "
            "dict architecture_record() returned or the 'architecture' entry of a compacted file"
        )
    if record.get("version") != RECORD_VERSION:
        raise CheckpointError(
            f"architecture record version {record.get('version')} is not the version "
            f"{RECORD_VERSION} this devprune reads; use the devprune that wrote it"
        )


@torch.no_grad()
def _resize(module: nn.Module, name: str, entry: dict[str, Any]) -> None:
    for tname, shape in entry["tensors"].items():
        old = getattr(module, tname, None)
        if not torch.is_tensor(old):
            raise CheckpointError(
                f"architecture record: module {name!r} has no tensor {tname!r} in the base "
                "model; build the base model with the settings the compacted model came from"
            )
        if list(old.shape) == list(shape):
            continue
        fresh = torch.zeros(shape, dtype=old.dtype, device=old.device)
        if isinstance(old, nn.Parameter):
            setattr(module, tname, nn.Parameter(fresh, requires_grad=old.requires_grad))
        else:
            module._buffers[tname] = fresh
    for attr, value in entry["sizes"].items():
        setattr(module, attr, value)


def rebuild(base_model: nn.Module, record: dict[str, Any]) -> nn.Module:
    """A copy of ``base_model`` (freshly built, same architecture settings) resized to the
    shapes in ``record``; load the compacted ``state_dict`` into it afterwards."""
    _check_record(record)
    model = copy.deepcopy(base_model)
    modules = dict(model.named_modules())
    for name, entry in record["modules"].items():
        module = modules.get(name)
        if module is None or _class_name(module) != entry["class"]:
            found = "missing" if module is None else _class_name(module)
            raise CheckpointError(
                f"architecture record: module {name!r} should be a {entry['class']} but the "
                f"base model has {found}; build the base model with the same model name and "
                "settings as the compacted one"
            )
        _resize(module, name, entry)
    return model
