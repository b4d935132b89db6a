"""``devprune compact RUN --out FILE``: physically compact a run's pruned model.

Reads the run's ``last.pt`` (the end of pruning; else ``best.pt``; ``--checkpoint best``
for the best-validation epoch, which may come before most pruning), rebuilds the model from
the checkpoint's
config, loads its weights and masks, compacts it (checking equal outputs on a random
example batch), writes the compacted-model file (docs/COMPACT.md) and prints a before/after
table.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch import nn

from devprune.compact.files import load_compacted, save_compacted
from devprune.compact.summary import compaction_summary, format_summary
from devprune.compact.surgery import compact
from devprune.errors import CheckpointError, ConfigError
from devprune.masks import MaskSet
from devprune.structure import discover

# last.pt first: the structure pruning ended with. best.pt (best validation accuracy) can be a
# checkpoint from before any pruning, whose compaction removes nothing.
CHECKPOINTS = ("last.pt", "best.pt")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compact", help="remove pruned units physically; write a smaller model",
        description="Compact a run's pruned model: dead filters/neurons and every tensor "
        "coupled to them are removed; outputs stay equal to the masked model's.",
    )
    parser.add_argument("run", type=Path, help="run directory (holds best.pt / last.pt)")
    parser.add_argument("--out", type=Path, required=True, help="compacted model file to write")
    parser.add_argument("--checkpoint", choices=["best", "last"], default=None,
                        help="which checkpoint to compact (default: last, the pruned "
                        "structure the run ended with; best = best validation epoch)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the equal-outputs check on a random example batch")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing --out file (never a run's own files)")
    parser.set_defaults(func=_compact)


def _checkpoint_path(run: Path, which: str | None) -> Path:
    if not run.is_dir():
        raise CheckpointError(f"run directory {run} does not exist; pass a `devprune train` "
                              "output directory")
    names = [f"{which}.pt"] if which else list(CHECKPOINTS)
    for name in names:
        if (run / name).is_file():
            return run / name
    raise CheckpointError(f"{run} holds none of {names}; train the run first (or pick "
                          "--checkpoint last)")


def _build_info(cfg: Any) -> dict[str, Any]:
    from devprune.data import dataset_info

    info = dataset_info(cfg.data.name)
    return {"model": cfg.model.name, "in_shape": list(info.in_shape),
            "num_classes": int(info.num_classes), "time_steps": cfg.model.time_steps,
            "kwargs": dict(cfg.model.kwargs)}


def _rebuild_model(build: dict[str, Any]) -> nn.Module:
    from devprune.models import build_model

    return build_model(build["model"], in_shape=tuple(build["in_shape"]),
                       num_classes=build["num_classes"], time_steps=build["time_steps"],
                       **build["kwargs"])


def _mask_state(payload: dict[str, Any]) -> dict[str, Any] | None:
    state = payload.get("masks")
    if state is None:
        state = (payload.get("pruner") or {}).get("masks")
    return state


def _load_masks(model: nn.Module, example: torch.Tensor, state: dict[str, Any] | None,
                path: Path) -> MaskSet:
    structure = discover(model, example)
    if state is None:  # a dense run: compaction must give back an equal model
        return MaskSet(structure)
    masks = MaskSet(structure, layers=list(state.get("masks", {})), mode=state.get("mode",
                                                                                 "default"))
    try:
        masks.load_state_dict(state)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from err
    return masks


def load_run(run: Path, which: str | None = None) -> tuple[nn.Module, MaskSet, torch.Tensor,
                                                           dict[str, Any]]:
    """Model (with the checkpoint's weights), masks, a random example batch and build args."""
    from devprune.compact.live import expand_checkpoint
    from devprune.runner.checkpoint import (
        checkpoint_config,
        load_checkpoint,
        load_model_state,
        require_entries,
    )

    path = _checkpoint_path(run, which)
    payload = load_checkpoint(path)
    require_entries(payload, path, ("model", "config"))
    build = _build_info(checkpoint_config(payload, path))
    if payload.get("time_steps") is not None:  # a length learnt in training (DPAP time side)
        build["time_steps"] = int(payload["time_steps"])
    model = _rebuild_model(build)
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(2, *build["in_shape"], generator=generator)
    # a checkpoint written after an in-training shrink, scattered into the full architecture
    payload = expand_checkpoint(model, payload, example)
    load_model_state(model, payload["model"], path)
    masks = _load_masks(model, example, _mask_state(payload), path)
    return model.eval(), masks, example, build


def check_out_path(out: Path, run: Path, *, force: bool) -> None:
    """Refuse an ``--out`` that would overwrite a user's file (``force``: allow it), a run's
    own files (always) or a folder, before any work is done."""
    from devprune.runner.rundir import refuse_overwrite

    if out.is_dir():
        raise ConfigError(f"compact --out {out} is a folder; give a file path such as "
                          f"{out / 'compact.pt'}")
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"compact --out {out}: {blocker} is a file, not a folder; choose "
                          "another --out")
    refuse_overwrite(out, command="compact", what="compacted model", example="compact.pt",
                     force=force, run=run)


def checkpoint_line(path: Path, payload: dict[str, Any], masks: MaskSet) -> str:
    """Which checkpoint is compacted, the epoch it holds and its mask connectivity."""
    total = ((payload.get("config") or {}).get("train") or {}).get("epochs")
    role = {"last.pt": "the last epoch", "best.pt": "the best-validation epoch"}.get(
        path.name, "a snapshot")
    return (f"compacting {path} ({role}: after epoch {payload.get('epochs_done')}"
            f"{f' of {total}' if total else ''}, mask connectivity "
            f"{100 * masks.connectivity():.1f}%)")


def _compact(args: argparse.Namespace) -> int:
    from devprune.runner.checkpoint import load_checkpoint

    check_out_path(args.out, args.run, force=args.force)
    model, masks, example, build = load_run(args.run, args.checkpoint)
    path = _checkpoint_path(args.run, args.checkpoint)
    print(checkpoint_line(path, load_checkpoint(path), masks))
    small = compact(model, masks, example, verify=not args.no_verify)
    summary = compaction_summary(model, small)
    save_compacted(args.out, small, build, summary)
    load_compacted(args.out)  # the file must load back before we call it done
    print(format_summary(summary))
    pinned = getattr(small, "compaction_plan", None)
    for cls, why in (pinned.pinned.items() if pinned else []):
        print(f"kept whole: {cls} ({why})")
    print(f"wrote {args.out}; load it with devprune.compact.load_compacted({str(args.out)!r})")
    return 0
