"""The run's measurement log: ``metrics.jsonl`` (one object per epoch) and what goes in it."""

from __future__ import annotations

import json
import math
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

from devprune import __version__
from devprune.errors import CheckpointError
from devprune.snn import native
from devprune.utils.io import atomic_write_text


def units_line(layers: dict[str, dict[str, Any]]) -> str:
    """``"fc1 612/800, fc2 10/10"`` for the epoch summary."""
    return ", ".join(f"{name} {v['units_alive']}/{v['units_total']}"
                     for name, v in layers.items())


# ------------------------------------------------------------------------------------------
# JSON hygiene
# ------------------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """Tensors, numpy values and non-finite floats -> plain JSON values (NaN/inf -> null)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.detach().cpu().tolist())
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


# ------------------------------------------------------------------------------------------
# metrics.jsonl
# ------------------------------------------------------------------------------------------


# What every epoch record of `devprune train` holds (report, plots and resume read them).
RECORD_KEYS = ("epoch", "lr", "train_loss", "val_accuracy", "test_accuracy", "connectivity",
               "params_total", "params_nonzero", "layers")


def read_metrics(path: str | Path, required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every epoch record of a ``metrics.jsonl`` (empty list when the file is absent).

    ``required``: keys every record must hold (e.g. :data:`RECORD_KEYS`), besides ``epoch``.
    """
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        try:
            record = json.loads(line) if line.strip() else None
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{path}: line {number} is not valid JSON ({err.msg}); the "
                                  "file was damaged: restore it, or start the run again") from err
        if record is not None and not (isinstance(record, dict)
                                       and isinstance(record.get("epoch"), int)):
            raise CheckpointError(f"{path}: line {number} is not an epoch record; pass a run "
                                  "directory written by `devprune train`")
        if record is None:
            continue
        missing = [k for k in required if k not in record]
        layers = record.get("layers", {})
        if not missing and "layers" in required and not (isinstance(layers, dict) and all(
                isinstance(v, dict) and {"units_alive", "units_total"} <= set(v)
                for v in layers.values())):
            missing = ["layers.*.units_alive"]
        if missing:
            raise CheckpointError(f"{path}: line {number} lacks {missing[:4]}; it is not a "
                                  "record of `devprune train` (damaged or edited): restore "
                                  "the file, or start the run again")
        records.append(record)
    return records


def write_metrics(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Rewrite the whole log atomically (a few KB per epoch; never half a line on disk)."""
    text = "".join(json.dumps(to_jsonable(r), sort_keys=False) + "\n" for r in records)
    atomic_write_text(path, text)


# ------------------------------------------------------------------------------------------
# Provenance
# ------------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    import yaml

    return {
        "devprune": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pyyaml": yaml.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        # whether the LIF loops ran compiled (same bits either way; speed differs)
        "native_lif_kernel": native.status(),
    }


def git_commit() -> dict[str, Any] | None:
    """Commit of the devprune source tree (None when it is not a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}
