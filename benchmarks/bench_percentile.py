"""Exact percentiles of 10^7 entries: devprune's selection against numpy's, in one process.

DPAP normalises every synapse layer by two percentiles of its alive entries (min..P75 by
default) at every pruning step; on the BrainCog CIFAR FC that is 16.8 M scores.
``devprune.pruning.importance.percentile`` brackets the rank with a strided sample, counts
exactly below the bracket and selects inside it (docs/DPAP.md#dpap-normalisation). This
benchmark times it against ``np.percentile`` (numpy's exact ``linear`` percentile; with a
population it first needs the chosen entries, ``v[population]``, and that gather is timed
with it) on random scores, with no population and with an irregular one (80% of the
entries, as pruning leaves a layer), interleaved, medians; every result is checked equal
(``torch.quantile`` refuses more than 2^24 entries). One thread for both: numpy's selection
is single-threaded.

    .venv/bin/python benchmarks/bench_percentile.py [--sizes 16777216] [--repeats 7]

Writes benchmarks/results/percentile.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from devprune.pruning.importance import percentile
from devprune.utils.io import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).parent / "results"
QS = (0.0, 75.0, 99.0)


def numpy_percentile(values: np.ndarray, q: float, population: np.ndarray | None) -> float:
    chosen = values if population is None else values[population]
    return float(np.percentile(chosen, q))


def bench_case(size: int, alive: float | None, q: float, repeats: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(size)
    scores = torch.randn(size, generator=gen).square_()  # BCM-like: non-negative, skewed
    population = None if alive is None else torch.rand(size, generator=gen) < alive
    values = scores.numpy()
    chosen = None if population is None else population.numpy()

    def ours() -> float:
        return float(percentile(scores, q, population))

    def theirs() -> float:
        return numpy_percentile(values, q, chosen)

    # numpy's linear interpolation runs in float64, devprune's in the scores' float32
    equal = abs(ours() - theirs()) <= 1e-6 * max(1.0, abs(theirs()))
    times: dict[str, list[float]] = {"devprune": [], "numpy": []}
    for _ in range(repeats):
        for name, fn in (("devprune", ours), ("numpy", theirs)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    ms = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    return {"size": size, "alive": alive, "q": q, "devprune_ms": ms["devprune"],
            "numpy_ms": ms["numpy"], "speedup": ms["numpy"] / ms["devprune"], "equal": equal}


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Exact percentiles: devprune vs numpy",
        "",
        f"Command: `python benchmarks/bench_percentile.py`; torch {result['torch']}, numpy "
        f"{result['numpy']}, 1 thread; {result['repeats']} interleaved repeats, medians; "
        f"load {result['load'][0]:.1f}-{result['load'][1]:.1f}. Scores: squared normal "
        "float32; population: a random 80% of the entries (None: all). numpy's time "
        "includes gathering the chosen entries (`v[population]`). equal: same value "
        "(float32 vs numpy's float64 interpolation, 1e-6 relative).",
        "",
        "| entries | population | q | devprune ms | numpy ms | speed-up | equal |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["cases"]:
        population = "all" if row["alive"] is None else f"{row['alive']:.0%}"
        lines.append(
            f"| {row['size']:,} | {population} | {row['q']:g} | {row['devprune_ms']:.1f} | "
            f"{row['numpy_ms']:.1f} | {row['speedup']:.1f}x | {row['equal']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1 << 20, 1 << 24])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS / "percentile")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    cases = [bench_case(size, alive, q, args.repeats)
             for size in args.sizes for alive in (None, 0.8) for q in QS]
    result = {"torch": torch.__version__, "numpy": np.__version__, "repeats": args.repeats,
              "load": [load_before, os.getloadavg()[0]], "cases": cases}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table = markdown(result)
    atomic_write_json(args.out.with_suffix(".json"), result)
    atomic_write_text(args.out.with_suffix(".md"), table)
    print(table)


if __name__ == "__main__":
    main()
