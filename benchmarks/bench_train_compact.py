"""End-to-end training wall time: DPAP with in-training compaction vs masked DPAP vs dense.

    .venv/bin/python benchmarks/bench_train_compact.py [--preset mnist-mlp-dpap-quick]
        [--rounds 3] [--compact-every 1] [--threads 1] [--set KEY=VALUE ...] [--name NAME]

Three variants of one preset, same seed: ``dense`` (``prune.method=none``), ``masked`` (the
preset as it is) and ``compact`` (``train.compact_every=N``). Each round trains every variant
once, in one process, in a rotating order, so load changes on a shared machine hit all three;
the results are the per-round ratios of wall times (median and range), never a lone absolute
time. Final test accuracies are reported beside them: compact must equal masked (same seed,
equal up to float rounding). Writes benchmarks/results/train_compact{-NAME}.{json,md}.
Run it on a quiet machine only (load average < 2.5); ``--set`` takes config overrides (the
tests run it on a tiny synthetic config).
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


def variant_overrides(variant: str, compact_every: int) -> list[str]:
    if variant == "dense":
        return ["prune.method=none"]
    if variant == "compact":
        return [f"train.compact_every={compact_every}"]
    return []


def run_once(preset: str, overrides: list[str], out: Path) -> tuple[float, dict[str, Any]]:
    cfg = load_config(preset, overrides)
    start = time.perf_counter()
    summary = train(cfg, out, quiet=True, log=lambda _: None)
    return time.perf_counter() - start, summary


def ratios(times: dict[str, list[float]], top: str, bottom: str) -> dict[str, float]:
    values = [a / b for a, b in zip(times[top], times[bottom], strict=True)]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def benchmark(preset: str, rounds: int, compact_every: int, extra: list[str],
              workdir: Path) -> dict[str, Any]:
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    finals: dict[str, dict[str, Any]] = {}
    for index in range(rounds):
        order = VARIANTS[index % 3:] + VARIANTS[:index % 3]  # rotate who goes first
        for variant in order:
            out = workdir / f"{variant}-{index}"
            overrides = [*extra, *variant_overrides(variant, compact_every)]
            seconds, summary = run_once(preset, overrides, out)
            times[variant].append(seconds)
            finals[variant] = {"test_accuracy": summary["final"]["test_accuracy"],
                               "connectivity": summary["connectivity"],
                               "params_total": summary["params_total"]}
    return {
        "preset": preset, "overrides": extra, "compact_every": compact_every,
        "rounds": rounds, "threads": torch.get_num_threads(),
        "load_average_before": os.getloadavg()[0],
        "ratios": {"compact/masked": ratios(times, "compact", "masked"),
                   "compact/dense": ratios(times, "compact", "dense"),
                   "masked/dense": ratios(times, "masked", "dense")},
        "final": finals,
        "compact_equals_masked": finals["compact"]["test_accuracy"]
        == finals["masked"]["test_accuracy"],
        "seconds_per_round": {v: times[v] for v in VARIANTS},  # context, not a result
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# In-training compaction: end-to-end wall time ({result['preset']})", "",
        f"{result['rounds']} rounds, variants interleaved in one process (rotating order), "
        f"{result['threads']} thread(s), train.compact_every={result['compact_every']}, "
        f"load average {result['load_average_before']:.2f} at start"
        + (f", overrides {' '.join(result['overrides'])}" if result["overrides"] else "") + ".",
        "", "| ratio of wall times | median | min | max |", "|---|---|---|---|",
    ]
    for name, r in result["ratios"].items():
        lines.append(f"| {name} | {r['median']:.3f} | {r['min']:.3f} | {r['max']:.3f} |")
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
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--name", default="", help="suffix of the result files")
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the result files")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    extra = [f"train.threads={args.threads}", *args.overrides]
    with tempfile.TemporaryDirectory(prefix="bench-train-compact-") as workdir:
        result = benchmark(args.preset, args.rounds, args.compact_every, extra, Path(workdir))
    stem = "train_compact" + (f"-{args.name}" if args.name else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
