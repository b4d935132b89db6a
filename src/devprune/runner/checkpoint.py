"""Checkpoints that let a run continue exactly where it stopped.

A checkpoint holds the model, optimizer, scheduler and pruner state (the masks are part of
the pruner's state, stored once: :func:`checkpoint_masks` reads them), every RNG state
(Python, NumPy, torch CPU and each CUDA device, the batch loader's generator), the number of
completed epochs, the best-validation record, the resolved config and its hash,
and the devprune / torch versions. Files are written atomically and read with
``torch.load(weights_only=True)``: everything inside is tensors and plain Python values, so
loading a checkpoint never executes pickled code. A ``checksum`` entry (SHA-256 of every
other entry, :mod:`devprune.utils.checksum`) detects bytes flipped on disk at load;
checkpoints written before it existed load without the check.
"""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from devprune import __version__
from devprune.errors import CheckpointError, ConfigError
from devprune.runner.config import config_from_dict
from devprune.utils.checksum import content_changed, sealed
from devprune.utils.io import atomic_torch_save

FORMAT = "devprune-run-checkpoint"
FORMAT_VERSION = 1


# ------------------------------------------------------------------------------------------
# RNG state as plain data (so weights_only loading accepts it)
# ------------------------------------------------------------------------------------------


def capture_rng(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Every random state that influences training, as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss_next],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss,
                  gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    return state


def restore_rng(state: dict[str, Any], generators: dict[str, torch.Generator] | None = None
                ) -> None:
    """Inverse of :func:`capture_rng`."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, generator in (generators or {}).items():
        if name in state["generators"]:
            generator.set_state(state["generators"][name])


# ------------------------------------------------------------------------------------------
# Save / load
# ------------------------------------------------------------------------------------------


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (see :func:`build_payload`) atomically to ``path``, with a checksum."""
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    atomic_torch_save(sealed(full), path)


def build_payload(
    *,
    epochs_done: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    pruner: Any,
    config: dict[str, Any],
    config_hash: str,
    best: dict[str, Any],
    generators: dict[str, torch.Generator] | None = None,
) -> dict[str, Any]:
    return {
        "epochs_done": epochs_done,
        "model": model.state_dict(),
        # a simulated length learnt in training (DPAP's time side) is not in the state dict
        "time_steps": getattr(model, "time_steps", None),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "pruner": pruner.state_dict(),  # a masked method's state holds its masks
        "rng": capture_rng(generators),
        "best": best,
        "config": config,
        "config_hash": config_hash,
        "devprune_version": __version__,
        "torch_version": str(torch.__version__),
    }


def checkpoint_masks(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The mask state (``MaskSet.state_dict``) of a checkpoint, None for a dense run.

    Masks live in the pruner's state; checkpoints written before they were stored once also
    hold an equal copy at ``payload["masks"]``, read when the pruner state has none.
    """
    pruner = payload.get("pruner")
    if isinstance(pruner, dict) and pruner.get("masks") is not None:
        return pruner["masks"]
    return payload.get("masks")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint, refusing a missing, truncated, corrupt or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; start the run without --resume")
    try:
        complete = zipfile.is_zipfile(path)  # torch.save writes a zip; a cut one has no index
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise _corrupt(path, err) from err
    if not complete:
        raise _corrupt(path, ValueError("not a complete torch zip archive"))
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        foreign = ("Unsupported global", "unsupported GLOBAL", "is blocked")
        if not any(text in str(err) for text in foreign):  # a damaged stream, not code
            raise _corrupt(path, err) from err
        raise CheckpointError(
            f"{path} holds pickled Python objects that devprune refuses to load (only tensors "
            "and plain values are read, so a checkpoint cannot run code); it is damaged or was "
            "not written by `devprune train`: pass that run's last.pt or best.pt"
        ) from err
    except Exception as err:  # anything else torch meets in a damaged file
        raise _corrupt(path, err) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a devprune run checkpoint (no '{FORMAT}' marker); pass the "
            "last.pt or best.pt that `devprune train` wrote"
        )
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {payload.get('format_version')} but this "
            f"devprune ({__version__}) reads version {FORMAT_VERSION}; use the devprune "
            f"version that wrote it ({payload.get('devprune_version')})"
        )
    verify_checksum(payload, path)
    _check_entry_types(payload, path)
    return payload


# The type each entry must have when present (a foreign or hand-edited file otherwise fails
# later with a TypeError / ValueError far from the file's name).
ENTRY_TYPES: dict[str, tuple[type, ...]] = {
    "epochs_done": (int,), "model": (dict,), "optimizer": (dict,), "scheduler": (dict,),
    "pruner": (dict,), "masks": (dict, type(None)),  # masks: only in older checkpoints
    "rng": (dict,), "best": (dict,),
    "config": (dict,), "config_hash": (str,), "time_steps": (int, type(None)),
}


def _check_entry_types(payload: dict[str, Any], path: Path) -> None:
    for key, types in ENTRY_TYPES.items():
        if key not in payload:
            continue
        value = payload[key]
        if not isinstance(value, types) or isinstance(value, bool):
            wanted = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            raise CheckpointError(
                f"checkpoint {path}: entry {key!r} is a {type(value).__name__}, not {wanted}; "
                "the file was not written by `devprune train` (or was edited): pass that "
                "run's last.pt or best.pt"
            )


def require_entries(payload: dict[str, Any], path: str | Path, keys: tuple[str, ...]) -> None:
    """Refuse a checkpoint that lacks any of ``keys`` (one line naming the file)."""
    missing = [k for k in keys if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}: it is not a complete "
                              "`devprune train` checkpoint; pass that run's last.pt or best.pt")


def checkpoint_config(payload: dict[str, Any], path: str | Path) -> Any:
    """The validated :class:`~devprune.runner.config.Config` a checkpoint was written with."""
    require_entries(payload, path, ("config",))
    try:
        return config_from_dict(payload["config"])
    except ConfigError as err:
        raise CheckpointError(f"checkpoint {path} holds an invalid configuration ({err}); it "
                              "was edited or written by another devprune version") from err


def verify_checksum(payload: dict[str, Any], path: str | Path) -> None:
    """Refuse ``payload`` when its stored checksum does not match its content (no checksum:
    a checkpoint of an earlier devprune, accepted as is)."""
    if content_changed(payload):
        raise CheckpointError(
            f"checkpoint {path} fails its checksum: its content changed after it was written "
            "(disk or copy corruption); resume from another checkpoint of the run (best.pt, "
            "or an epoch-NNN.pt when run.keep > 0) or start the run again"
        )


def _corrupt(path: Path, err: BaseException) -> CheckpointError:
    text = str(err).split("WeightsUnpickler error:")[-1].strip()  # torch's own detail only
    first_line = (text.splitlines() or [""])[0][:160]
    return CheckpointError(
        f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {first_line}); "
        "delete it and resume from another checkpoint of the run (best.pt, or an "
        "epoch-NNN.pt when run.keep > 0) or start the run again"
    )


def load_model_state(model: torch.nn.Module, state: dict[str, Any], path: str | Path, *,
                     time_steps: int | None = None) -> None:
    """Load weights strictly, turning a shape or key mismatch into a CheckpointError.

    A simulated length that training shortened travels in the state dict (the encoder's
    ``steps`` buffer); ``time_steps`` (the payload's copy) serves checkpoints written before
    it did. None leaves the model's own.
    """
    if time_steps is not None and isinstance(getattr(model, "time_steps", None), int):
        model.time_steps = int(time_steps)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:400]
        raise CheckpointError(
            f"checkpoint {path} does not fit this model ({detail}); it was written for a "
            "different model.* setting: resume with the run's own config.yaml or start anew"
        ) from err
