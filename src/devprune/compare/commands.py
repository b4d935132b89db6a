"""``devprune compare``: run a grid of methods x targets x seeds, then tabulate and plot it."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from devprune.compare.execute import run_grid
from devprune.compare.frontier import write_frontier
from devprune.compare.grid import grid_from_args, load_grid
from devprune.errors import ConfigError

EPILOG = """\
examples:
  devprune compare experiments/grids/mnist_mlp_frontier.yaml --out runs/frontier-mnist
  devprune compare --base mnist-mlp-dense-quick --methods dense magnitude random \\
      --targets 0.2 0.05 --seeds 0 1 --set train.threads=1 --out runs/quick-compare
  devprune compare GRID.yaml --out runs/f --only dense dpap   # a subset of the cells
  devprune compare GRID.yaml --out runs/f --report-only       # table + plots of what is done

A finished run (summary.json) is never re-run: re-running the command resumes the grid.
Each cell is a normal run directory (<out>/<setting>/seed-<s>) that every other command reads.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare", help="run a grid of methods x targets x seeds and plot the frontier",
        description="Run a comparison grid (resumable) and write compare.md, compare.json "
        "and the accuracy-vs-connectivity / accuracy-vs-energy plots.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("grid", nargs="?", type=Path, metavar="GRID.yaml",
                   help="a grid file (see docs/COMPARE.md); or use --base/--methods")
    p.add_argument("--out", type=Path, help="folder of the grid's runs and results "
                   "(default: runs/compare/<grid name>)")
    p.add_argument("--base", help="command-line grid: the preset or YAML every cell shares")
    p.add_argument("--methods", nargs="+", default=[], help="command-line grid: methods "
                   "(dense, dpap, sdsnn, magnitude, random, lth, set, rigl)")
    p.add_argument("--targets", nargs="+", type=float, help="kept fractions for the baselines")
    p.add_argument("--seeds", nargs="+", type=int, help="train.seed values (overrides the "
                   "grid file's)")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE", help="overrides for every cell (after the grid's own)")
    p.add_argument("--only", nargs="+", metavar="CELL", help="run only these cells")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing; tabulate and plot the finished runs")
    p.add_argument("--verbose", action="store_true", help="progress bars inside each run")
    p.set_defaults(func=cmd_compare)


def _grid(args: argparse.Namespace):  # -> Grid
    if args.grid is not None:
        if args.base or args.methods or args.targets:
            raise ConfigError("compare: give a GRID.yaml or --base/--methods/--targets, "
                              "not both")
        return load_grid(args.grid, args.seeds, args.overrides)
    if not args.base or not args.methods:
        raise ConfigError("compare: give a GRID.yaml, or --base PRESET and --methods ...")
    return grid_from_args(args.base, args.methods, args.targets, args.seeds or [0],
                          args.overrides)


def cmd_compare(args: argparse.Namespace) -> int:
    grid = _grid(args)
    if args.only:
        unknown = sorted(set(args.only) - {c.name for c in grid.cells})
        if unknown:
            raise ConfigError(f"compare --only: unknown cell(s) {unknown}; cells are "
                              f"{sorted({c.name for c in grid.cells})}")
    out = args.out or Path("runs") / "compare" / grid.name
    command = shlex.join(["devprune", *sys.argv[1:]]) if sys.argv[1:2] == ["compare"] \
        else "devprune compare"
    seconds = None
    if not args.report_only:
        start = time.perf_counter()
        run_grid(grid, out, only=args.only, quiet=not args.verbose)
        seconds = time.perf_counter() - start
    write_frontier(grid, out, command=command, grid_seconds=seconds)
    return 0
