"""``devprune measure RUN [--dense RUN]``: per-layer efficiency table of a finished run.

Reads the ``static`` and ``workload`` measurements the runner stored (``summary.json``, or
the last epoch of ``metrics.jsonl`` that has them) and prints the NeuroBench-named summary
and the per-layer Markdown table, optionally beside a dense twin run.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from devprune.compact import compact
from devprune.errors import ConfigError
from devprune.measure.neurobench_adapter import _import, comparison_lines, neurobench_results
from devprune.measure.report import layer_table, summary_lines
from devprune.runner.data import load_split
from devprune.runner.metrics import read_metrics
from devprune.runner.report import read_summary
from devprune.runner.runmodel import load_run
from devprune.utils.io import atomic_write_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``measure`` command to the top-level parser."""
    cmd = subparsers.add_parser(
        "measure", help="per-layer efficiency table of a run (NeuroBench names)",
        description="Print the measured ParameterCount, Footprint, ConnectionSparsity, "
        "ActivationSparsity, SynapticOperations and energy of a run, and a per-layer table "
        "(units alive, connectivity, input kind, firing rate, MACs, ACs, energy per sample). "
        "Definitions: docs/MEASUREMENT.md.")
    cmd.add_argument("run", metavar="RUN", help="run directory written by `devprune train`")
    cmd.add_argument("--dense", metavar="RUN", help="a dense twin run to show beside it")
    cmd.add_argument("--neurobench", action="store_true",
                     help="also run NeuroBench's Benchmark on the compacted model (the run's "
                     "measurement subset of the test set) and write RUN/neurobench.json with "
                     "devprune's numbers beside it (needs neurobench)")
    cmd.set_defaults(func=_measure)


def measurements(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(static, workload) of a run: from summary.json, else the last measured epoch."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"measure: run directory {run_dir} does not exist (or is a file); "
                          "pass a run directory written by `devprune train`")
    candidates: list[dict[str, Any]] = []
    summary = read_summary(run_dir)
    if summary is not None:
        candidates.append(summary)
    candidates += list(reversed(read_metrics(run_dir / "metrics.jsonl")))
    for record in candidates:
        if isinstance(record.get("static"), dict):
            static, workload = record["static"], record.get("workload")
            if not isinstance(workload, (dict, type(None))):
                workload = None
            return static, workload
    raise ConfigError(
        f"{run_dir}: no summary.json or metrics.jsonl with 'static' measurements; pass a run "
        "directory written by `devprune train`"
    )


def _measure(args: argparse.Namespace) -> int:
    static, workload = measurements(args.run)
    dense_static = dense_workload = None
    if args.dense:
        dense_static, dense_workload = measurements(args.dense)
        print(f"## dense twin: {args.dense}\n")
        print("\n".join(f"- {line}" for line in summary_lines(dense_static, dense_workload)))
        print()
    print(f"## {args.run}\n")
    print("\n".join(f"- {line}" for line in summary_lines(static, workload)))
    print()
    print(layer_table(static, workload, dense_static=dense_static,
                      dense_workload=dense_workload))
    if args.neurobench:
        _neurobench(Path(args.run))
    return 0


def neurobench_run(run: Path) -> dict[str, Any]:
    """NeuroBench and devprune on the run's compacted model; writes RUN/neurobench.json."""
    _import("neurobench")  # fail before any work when it is missing
    loaded = load_run(run)
    small = compact(loaded.model, loaded.masks, loaded.example)
    cfg = loaded.cfg
    test = load_split(cfg.data, "test", cfg.measure.subset)
    inputs, targets = test.batch(torch.arange(min(cfg.measure.subset, len(test))),
                                 augment=False)
    result = neurobench_results(small, inputs.float(), targets,
                                batch_size=cfg.data.eval_batch_size)
    result["run"] = str(run)
    result["model"] = "compacted"
    atomic_write_json(run / "neurobench.json", result)
    return result


def _neurobench(run: Path) -> None:
    result = neurobench_run(run)
    print(f"\n## NeuroBench {result['neurobench_version']} on the compacted model "
          f"({result['samples']} test samples)\n")
    print("\n".join(comparison_lines(result)))
    print(f"\nwrote {run / 'neurobench.json'}")
