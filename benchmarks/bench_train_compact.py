"""End-to-end training wall time: DPAP with in-training compaction vs masked DPAP vs dense.

    .venv/bin/python benchmarks/bench_train_compact.py [--preset mnist-mlp-dpap-quick]
        [--rounds 3] [--compact-every 1] [--compact-every-batches 0] [--threads 1]
        [--set KEY=VALUE ...] [--name NAME]

Three variants of one preset, same seed: ``dense`` (``prune.method=none``), ``masked``
(no compaction) and ``compact`` (``train.compact_every=N`` and
``train.compact_every_batches=M``; M > 0 shrinks within epochs, e.g. the 1-epoch snn-small
preset after each of its 25-batch DPAP steps: ``--compact-every 0 --compact-every-batches
25``). Each round trains
every variant once, in one process, in a rotating order, so load changes on a shared machine
hit all three; the results are the per-round ratios of wall times and of the process's CPU
times (median and range), never a lone absolute time. Final test accuracies are reported
beside them: compact must equal masked (same seed, equal up to float rounding). Writes
benchmarks/results/train_compact{-NAME}.{json,md}, one entry per preset (the entry of this
preset replaced, the others kept).
On a shared machine read the CPU-time ratios (wall times move with other processes).
``--set`` takes config overrides (the tests run it on a tiny synthetic config).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from devprune.runner.config import load_config
from devprune.runner.train import train

OUT = Path(__file__).resolve().parent / "results"
VARIANTS = ("dense", "masked", "compact")
CADENCE = ("compact_every", "compact_every_batches")
PAIRS = ("compact/masked", "compact/dense", "masked/dense")


def variant_overrides(variant: str, cadence: dict[str, int]) -> list[str]:
    """``cadence``: the compact variant's ``train.compact_every*`` settings."""
    if variant == "dense":
        return ["prune.method=none"]
    off = variant == "masked"  # masked: no compaction, whatever the preset says
    return [f"train.{key}={0 if off else value}" for key, value in cadence.items()]


def run_once(preset: str, overrides: list[str],
             out: Path) -> tuple[float, float, dict[str, Any]]:
    """(wall seconds, CPU seconds of this process, summary) of one training run. CPU time
    is what the run itself computed; other processes on a shared machine move the wall time
    far more than the CPU time."""
    cfg = load_config(preset, overrides)
    start, start_cpu = time.perf_counter(), time.process_time()
    summary = train(cfg, out, quiet=True, log=lambda _: None)
    return time.perf_counter() - start, time.process_time() - start_cpu, summary


def ratios(times: dict[str, list[float]], top: str, bottom: str) -> dict[str, float]:
    values = [a / b for a, b in zip(times[top], times[bottom], strict=True)]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def benchmark(preset: str, rounds: int, cadence: dict[str, int], extra: list[str],
              workdir: Path) -> dict[str, Any]:
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    load = [os.getloadavg()[0]]
    finals: dict[str, dict[str, Any]] = {}
    for index in range(rounds):
        order = VARIANTS[index % 3:] + VARIANTS[:index % 3]  # rotate who goes first
        for variant in order:
            out = workdir / f"{variant}-{index}"
            overrides = [*extra, *variant_overrides(variant, cadence)]
            seconds, cpu_seconds, summary = run_once(preset, overrides, out)
            times[variant].append(seconds)
            cpu[variant].append(cpu_seconds)
            load.append(os.getloadavg()[0])
            finals[variant] = {"test_accuracy": summary["final"]["test_accuracy"],
                               "connectivity": summary["connectivity"],
                               "params_total": summary["params_total"]}
    return {
        "preset": preset, "overrides": extra, **cadence,
        "rounds": rounds, "threads": torch.get_num_threads(),
        "load_average": {"min": min(load), "max": max(load)},
        "ratios": {pair: ratios(times, *pair.split("/")) for pair in PAIRS},
        "cpu_ratios": {pair: ratios(cpu, *pair.split("/")) for pair in PAIRS},
        "final": finals,
        "compact_equals_masked": finals["compact"]["test_accuracy"]
        == finals["masked"]["test_accuracy"],
        "seconds_per_round": {v: times[v] for v in VARIANTS},  # context, not a result
        "cpu_seconds_per_round": {v: cpu[v] for v in VARIANTS},
    }


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """All presets' results, one section each."""
    return "\n".join(section(result) for result in results.values())


def section(result: dict[str, Any]) -> str:
    cadence = ", ".join(f"train.{key}={result.get(key, 0)}" for key in CADENCE)
    lines = [
        f"# In-training compaction: end-to-end wall time ({result['preset']})", "",
        f"{result['rounds']} rounds, variants interleaved in one process (rotating order), "
        f"{result['threads']} thread(s), {cadence}, "
        f"1-min load average {result['load_average']['min']:.1f}-"
        f"{result['load_average']['max']:.1f} (2 cores)"
        + (f", overrides {' '.join(result['overrides'])}" if result["overrides"] else "") + ". "
        "Per-round ratios; CPU = the process's CPU time, which other processes on the "
        "machine move far less than the wall time.",
        "", "| ratio | wall median | wall min-max | CPU median | CPU min-max |",
        "|---|---|---|---|---|",
    ]
    for name, r in result["ratios"].items():
        c = result["cpu_ratios"][name]
        lines.append(f"| {name} | {r['median']:.3f} | {r['min']:.3f}-{r['max']:.3f} | "
                     f"{c['median']:.3f} | {c['min']:.3f}-{c['max']:.3f} |")
    lines += ["", "| variant | final test accuracy | connectivity |", "|---|---|---|"]
    for name, final in result["final"].items():
        lines.append(f"| {name} | {100 * final['test_accuracy']:.2f}% | "
                     f"{100 * final['connectivity']:.1f}% |")
    lines += ["", f"compact equals masked: {result['compact_equals_masked']}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mnist-mlp-dpap-quick")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compact-every", type=int, default=1)
    parser.add_argument("--compact-every-batches", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--name", default="", help="suffix of the result files")
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the result files")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    extra = [f"train.threads={args.threads}", *args.overrides]
    with tempfile.TemporaryDirectory(prefix="bench-train-compact-") as workdir:
        cadence = dict(zip(CADENCE, (args.compact_every, args.compact_every_batches),
                           strict=True))
        result = benchmark(args.preset, args.rounds, cadence, extra, Path(workdir))
    stem = "train_compact" + (f"-{args.name}" if args.name else "")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{stem}.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[args.preset] = result
    path.write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(results))
    print(section(result))
    return result


if __name__ == "__main__":
    main()
