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

from devprune.compact.files import load_compacted, save_compacted
from devprune.compact.summary import compaction_summary, format_summary
from devprune.compact.surgery import compact
from devprune.errors import ConfigError
from devprune.masks import MaskSet
from devprune.runner.rundir import refuse_overwrite
from devprune.runner.runmodel import load_run


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


def check_out_path(out: Path, run: Path, *, force: bool) -> None:
    """Refuse an ``--out`` that would overwrite a user's file (``force``: allow it), a run's
    own files (always) or a folder, before any work is done."""
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
    check_out_path(args.out, args.run, force=args.force)
    run = load_run(args.run, args.checkpoint)
    print(checkpoint_line(run.path, run.payload, run.masks))
    small = compact(run.model, run.masks, run.example, verify=not args.no_verify)
    summary = compaction_summary(run.model, small)
    save_compacted(args.out, small, run.build, summary)
    load_compacted(args.out)  # the file must load back before we call it done
    print(format_summary(summary))
    pinned = getattr(small, "compaction_plan", None)
    for cls, why in (pinned.pinned.items() if pinned else []):
        print(f"kept whole: {cls} ({why})")
    print(f"wrote {args.out}; load it with devprune.compact.load_compacted({str(args.out)!r})")
    return 0
