"""The comparison grid: which runs make up a comparison, validated before anything runs.

A grid file (YAML)::

    name: mnist-mlp-frontier
    base: mnist-mlp-dense-quick          # the recipe every cell shares (preset or YAML)
    set: [train.threads=1]               # overrides for every cell
    seeds: [0, 1, 2]                     # train.seed of each repetition
    cells:
      - name: dense                      # base as is
      - name: dpap
        base: mnist-mlp-dpap-quick       # a cell may start from its own preset
      - name: magnitude
        method: magnitude                # prune.method
        set: {prune.magnitude.every_batches: 50, prune.magnitude.end: 25}
        targets: [0.2, 0.1, 0.05]        # one run per target (prune.<method>.target)
      - name: magnitude-matched
        method: magnitude
        match: dpap                      # per-layer target = that cell's run, same seed

Every cell runs once per seed; a cell with ``targets`` once per target and seed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devprune.errors import ConfigError
from devprune.pruning.base import available_pruners, pruner_config_class
from devprune.pruning.targets import takes_target
from devprune.runner.config import Config, load_config
from devprune.runner.yamlio import yaml_load

GRID_KEYS = ("name", "base", "set", "seeds", "cells")
CELL_KEYS = ("name", "base", "method", "set", "targets", "match")


@dataclass(frozen=True)
class Cell:
    """One run of the grid: a named setting, an optional target, one seed."""

    name: str
    source: str
    overrides: tuple[str, ...]
    method: str
    seed: int
    target: float | None = None
    match: str | None = None

    @property
    def key(self) -> str:
        """The setting this run repeats (seeds are averaged over a key)."""
        return self.name if self.target is None else f"{self.name}@{self.target:g}"

    def run_dir(self, out: Path) -> Path:
        return out / self.key / f"seed-{self.seed}"

    def all_overrides(self, extra: tuple[str, ...] = ()) -> list[str]:
        sets = [*self.overrides, f"train.seed={self.seed}"]
        if self.method:
            sets.insert(0, f"prune.method={self.method}")
        if self.target is not None:
            sets.append(f"prune.{self.method}.target={self.target!r}")
        return [*sets, *extra]


@dataclass
class Grid:
    name: str
    cells: list[Cell] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    source: str = ""

    def settings(self) -> list[str]:
        return list(dict.fromkeys(c.key for c in self.cells))


def _overrides(raw: Any, where: str) -> tuple[str, ...]:
    """``set`` as a list of ``key=value`` strings or a mapping of key -> value."""
    if raw is None:
        return ()
    if isinstance(raw, dict):
        import json

        return tuple(f"{k}={json.dumps(v)}" for k, v in raw.items())
    if isinstance(raw, list) and all(isinstance(s, str) and "=" in s for s in raw):
        return tuple(raw)
    raise ConfigError(f"{where}.set: expected a list of KEY=VALUE strings or a mapping, "
                      f"got {raw!r}")


def _unknown(raw: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    extra = sorted(set(raw) - set(allowed))
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {extra}; allowed: {list(allowed)}")


def _seeds(raw: Any) -> list[int]:
    seeds = raw if raw is not None else [0]
    if not isinstance(seeds, list) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ConfigError(f"seeds: expected a non-empty list of integers >= 0, got {raw!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds: {seeds} repeats a seed")
    return seeds


def _targets(raw: Any, where: str) -> list[float | None]:
    if raw is None:
        return [None]
    values = raw if isinstance(raw, list) else [raw]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
            raise ConfigError(f"{where}.targets: {v!r} is not a kept fraction in (0, 1]")
    return [float(v) for v in values]


def grid_from_dict(raw: Any, source: str = "<grid>", seeds: list[int] | None = None,
                   extra: list[str] | None = None) -> Grid:
    """Build and validate a grid: every cell's configuration is loaded once, so a bad key,
    an unknown method or a bad target fails here, before any run starts."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a grid is a mapping with keys {list(GRID_KEYS)}")
    _unknown(raw, GRID_KEYS, "grid")
    base = raw.get("base")
    common = _overrides(raw.get("set"), "grid")
    extra_sets = tuple(extra or ())
    cells_raw = raw.get("cells")
    if not isinstance(cells_raw, list) or not cells_raw:
        raise ConfigError("grid.cells: expected a non-empty list of cells")
    grid = Grid(name=str(raw.get("name") or Path(source).stem), source=source,
                seeds=seeds or _seeds(raw.get("seeds")))
    names: dict[str, str] = {}
    for i, cell_raw in enumerate(cells_raw):
        where = f"grid.cells[{i}]"
        if not isinstance(cell_raw, dict) or not isinstance(cell_raw.get("name"), str):
            raise ConfigError(f"{where}: expected a mapping with at least a 'name'")
        _unknown(cell_raw, CELL_KEYS, where)
        name = cell_raw["name"]
        if name in names or "/" in name or "@" in name:
            raise ConfigError(f"{where}.name: {name!r} is repeated or holds '/' or '@'")
        cell_source = cell_raw.get("base", base)
        if not cell_source:
            raise ConfigError(f"{where}: no 'base' (give one for the grid or the cell)")
        overrides = common + _overrides(cell_raw.get("set"), where) + extra_sets
        method = str(cell_raw.get("method") or "")
        match = cell_raw.get("match")
        template = Cell(name, str(cell_source), overrides, method, 0, None, match)
        cfg = _check_cell(template, cell_raw, names, where)
        names[name] = cfg.prune.method
        for target in _targets(cell_raw.get("targets"), where):
            for seed in grid.seeds:
                grid.cells.append(dataclasses.replace(template, seed=seed, target=target,
                                                      method=cfg.prune.method))
    return grid


def _check_cell(cell: Cell, raw: dict[str, Any], earlier: dict[str, str],
                where: str) -> Config:
    """Load the cell's config (seed 0; with a placeholder target where it takes one) to
    validate it; returns the config without the target."""
    targeted = raw.get("targets") is not None or cell.match is not None
    try:
        cfg = load_config(cell.source, cell.all_overrides())
        if targeted and not takes_target(cfg.method_config()):
            raise ConfigError(f"method {cfg.prune.method!r} takes no target; 'targets' and "
                              "'match' apply to the baselines (magnitude, random, lth, set, "
                              "rigl)")
        if targeted:
            load_config(cell.source, dataclasses.replace(cell, target=0.5).all_overrides())
    except ConfigError as err:
        raise ConfigError(f"{where} ({cell.name}): {err}") from None
    if cell.match is not None:
        if cell.match not in earlier:
            raise ConfigError(f"{where}.match: {cell.match!r} is not an earlier cell; cells "
                              f"so far: {sorted(earlier)}")
        if earlier[cell.match] == "none":
            raise ConfigError(f"{where}.match: cell {cell.match!r} is dense (prune.method="
                              "none); match a pruning run")
        if raw.get("targets") is not None:
            raise ConfigError(f"{where}: give 'targets' or 'match', not both")
    return cfg


def load_grid(path: str | Path, seeds: list[int] | None = None,
              extra: list[str] | None = None) -> Grid:
    """The grid in file ``path``; ``seeds`` replace its seeds, ``extra`` overrides go after
    every cell's own."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"compare: grid file {path} does not exist")
    return grid_from_dict(yaml_load(path.read_text()), str(path), seeds, extra)


def grid_from_args(base: str, methods: list[str], targets: list[float] | None,
                   seeds: list[int], overrides: list[str], name: str | None = None) -> Grid:
    """A grid from the command line: one cell per method; ``targets`` go to every method
    that takes one (the others run once per seed)."""
    cells: list[dict[str, Any]] = []
    for method in methods:
        method = "none" if method == "dense" else method
        if method not in available_pruners():
            raise ConfigError(f"compare --methods: unknown method {method!r}; choose from "
                              f"{['dense', *sorted(available_pruners())]}")
        cell: dict[str, Any] = {"name": "dense" if method == "none" else method,
                                "method": method}
        if targets and takes_target(pruner_config_class(method)):
            cell["targets"] = list(targets)
        cells.append(cell)
    return grid_from_dict({"name": name or f"{base}-compare", "base": base,
                           "set": list(overrides), "seeds": seeds, "cells": cells},
                          "<command line>")
