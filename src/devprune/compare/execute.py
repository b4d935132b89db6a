"""Running a grid: every cell in order, one process, resumable.

A cell whose run directory holds ``summary.json`` is finished and never re-run; one with a
``last.pt`` continues from it; one that died before its first checkpoint starts again in
place (train()'s own rule, as for ``devprune train --resume``). Matched cells read their
targets from the matched cell's run at the same seed, so they run after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from devprune.compare.grid import Cell, Grid
from devprune.runner.config import load_config
from devprune.runner.matching import match_overrides
from devprune.runner.rundir import SUMMARY_FILE as SUMMARY
from devprune.runner.train import train

Log = Callable[[str], None]


def cell_done(cell: Cell, out: Path) -> bool:
    return (cell.run_dir(out) / SUMMARY).is_file()


def cell_overrides(cell: Cell, grid: Grid, out: Path) -> list[str]:
    """The cell's overrides, with a matched target resolved from the matched run: the
    baseline prunes the layers the matched run pruned, each to that run's connectivity."""
    extra: tuple[str, ...] = ()
    if cell.match is not None:
        matched = next(c for c in grid.cells if c.name == cell.match and c.seed == cell.seed)
        extra = tuple(match_overrides(cell.method, matched.run_dir(out)))
    return cell.all_overrides(extra)


def run_cell(cell: Cell, grid: Grid, out: Path, *, quiet: bool, log: Log) -> float:
    """Train one cell (or continue it); returns this call's wall-clock seconds."""
    run = cell.run_dir(out)
    # train() continues from last.pt, or restarts in place a run killed before its first
    # checkpoint (and refuses a folder holding anything else): one rule for both commands.
    resume = run.exists()
    cfg = load_config(cell.source, cell_overrides(cell, grid, out))
    cfg.run.name = f"{grid.name}.{cell.key}.seed-{cell.seed}"
    start = time.perf_counter()
    train(cfg, run, resume=resume, quiet=quiet, log=log)
    return time.perf_counter() - start


def run_grid(grid: Grid, out: Path, *, only: list[str] | None = None, quiet: bool = True,
             log: Log = print) -> dict[str, float]:
    """Run every unfinished cell (``only``: cells of these names); returns wall seconds per
    run directory run now."""
    cells = [c for c in grid.cells if not only or c.name in only]
    todo = [c for c in cells if not cell_done(c, out)]
    log(f"[compare] {grid.name}: {len(cells)} runs, {len(cells) - len(todo)} already done, "
        f"{len(todo)} to run -> {out}")
    times: dict[str, float] = {}
    for i, cell in enumerate(todo, 1):
        log(f"[compare] run {i}/{len(todo)}: {cell.key} seed {cell.seed} "
            f"({cell.method or 'base'} from {cell.source})")
        times[str(cell.run_dir(out))] = run_cell(cell, grid, out, quiet=quiet,
                                                 log=lambda line, c=cell: log(
                                                     f"  [{c.key} s{c.seed}] {line}"))
    return times
