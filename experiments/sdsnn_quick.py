"""SD-SNN at the DPAP quick recipe: default vs reference mode vs dense, several seeds.

For each dataset the SD-SNN quick preset is run as shipped (``default`` mode), with
``prune.mode=reference`` (the authors' soft masks and selection, same cadence and constants)
and with ``prune.method=none`` (dense: same data, model, recipe and seed by construction).
Per run it reads every epoch's test accuracy, connectivity, neurons pruned and synapses
regrown from metrics.jsonl and checks the issue-15 targets: no epoch more than 5 points below
the one before, final accuracy within 1 point of dense (mean over the seeds run), regrowth
above zero. Resumable: a run whose summary.json exists is not re-run. Writes
experiments/results/sdsnn_quick.{json,md}.

Usage (one training process at a time; ~2 min per MNIST run on one busy CPU thread):
    OMP_NUM_THREADS=1 .venv/bin/python experiments/sdsnn_quick.py \\
        [--datasets mnist fashion derived] [--methods default reference dense] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from statistics import mean

from _common import (
    RESULTS,
    ensure_run,
    read_metrics,
    read_summary,
    show_command,
    train_command,
)

PRESETS = {"mnist": "mnist-mlp-sdsnn-quick", "fashion": "fashion-mlp-sdsnn-quick",
           "derived": "derived-events-snn-sdsnn-quick"}
METHODS = {"default": [], "dense": ["prune.method=none"], "reference": ["prune.mode=reference"]}
COMMON = ["train.threads=1"]
MAX_DROP, MAX_LOSS = 5.0, 1.0  # percentage points
# Dense runs already committed for a dataset (same data, model, seed and recipe), used when
# this script has no dense run of its own there: {dataset: (final test, where, command)}.
COMMITTED_DENSE = {
    "derived": (0.928, "experiments/results/derived_events.md, run `dense` (seed 42, 3 epochs)",
                ".venv/bin/python -m devprune train derived-events-snn-dpap-quick --quiet "
                "--out /tmp/derived_runs/dense --set train.threads=1 prune.method=none"),
}


def _overrides(method: str, seed: int) -> list[str]:
    return [*COMMON, f"train.seed={seed}", *METHODS[method]]


def _epochs(run: Path) -> list[dict]:
    rows = []
    for rec in read_metrics(run):
        pruning = rec.get("pruning") or {}
        layers = rec.get("layers") or {}
        rows.append({
            "epoch": rec["epoch"], "test": rec["test_accuracy"], "val": rec.get("val_accuracy"),
            "connectivity": rec.get("connectivity"),
            "steps": len(pruning.get("steps", [])),
            "neurons_pruned": sum(pruning.get("neurons_pruned", {}).values()),
            "regrown": pruning.get("regrown"),
            "units": {k: f"{v['units_alive']}/{v['units_total']}" for k, v in layers.items()},
        })
    return rows


def _largest_drop(rows: list[dict]) -> float:
    """The largest fall of test accuracy from one epoch to the next, in points."""
    tests = [100 * r["test"] for r in rows]
    return max([0.0, *(a - b for a, b in itertools.pairwise(tests))])


def run_one(dataset: str, method: str, seed: int, runs: Path) -> dict:
    out = runs / f"{dataset}-{method}-s{seed}"
    preset, overrides = PRESETS[dataset], _overrides(method, seed)
    ensure_run(preset, out, overrides, log=runs / f"{out.name}.log")
    summary = read_summary(out)
    rows = _epochs(out)
    return {"dataset": dataset, "method": method, "seed": seed, "preset": preset,
            "command": show_command(train_command(preset, out, overrides)),
            "final_test": rows[-1]["test"],
            "best_val_test": (summary.get("best_val") or {}).get("test_accuracy"),
            "connectivity": rows[-1]["connectivity"],
            "largest_drop": _largest_drop(rows), "wall_s": summary.get("wall_time_s"),
            "epochs": rows}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _markdown(results: list[dict]) -> str:
    lines = ["# SD-SNN at the quick recipe: default vs reference vs dense", "",
             "Each run: `devprune train PRESET --set train.threads=1 train.seed=S [+ method "
             "override]`; default = the preset as shipped, reference = `prune.mode=reference`, "
             "dense = `prune.method=none`. Largest drop: the largest fall of test accuracy "
             "from one epoch to the next (pruning steps run inside epochs, every "
             "`every_batches` batches; the epoch-end evaluation is the one after the last "
             "step of the epoch). Regrown: synapses regenerated per epoch.", ""]
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        rows = [r for r in results if r["dataset"] == dataset]
        dense = [r["final_test"] for r in rows if r["method"] == "dense"]
        lines += [f"## {dataset} (`{rows[0]['preset']}`)", ""]
        if not dense and dataset in COMMITTED_DENSE:
            final, where, command = COMMITTED_DENSE[dataset]
            dense = [final]
            lines += [f"Dense: {100 * final:.2f}% from {where}: `{command}` (the same data, "
                      "model, seed, optimiser and epochs as this preset; not re-run here).", ""]
        lines += [
                  "| method | seed | final test | test at best val | connectivity | units "
                  "| largest drop (pts) | regrown per epoch | per-epoch test | wall s |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            units = ", ".join(r["epochs"][-1]["units"].values())
            regrown = ", ".join("-" if e["regrown"] is None else str(e["regrown"])
                                for e in r["epochs"])
            per_epoch = " / ".join(f"{100 * e['test']:.2f}" for e in r["epochs"])
            conn = r["connectivity"]
            lines.append(f"| {r['method']} | {r['seed']} | {_pct(r['final_test'])} | "
                         f"{_pct(r['best_val_test'])} | "
                         f"{'-' if conn is None else f'{100 * conn:.1f}%'} | {units} | "
                         f"{r['largest_drop']:.2f} | {regrown} | {per_epoch} | "
                         f"{r['wall_s'] or 0:.0f} |")
        lines += ["", "| method | seeds | mean final test | vs dense mean (pts) | largest drop "
                  "(pts) | drop <= 5 | within 1 pt of dense |", "|---|---|---|---|---|---|---|"]
        for method in dict.fromkeys(r["method"] for r in rows):
            mine = [r for r in rows if r["method"] == method]
            final = mean(r["final_test"] for r in mine)
            gap = 100 * (final - mean(dense)) if dense else None
            drop = max(r["largest_drop"] for r in mine)
            lines.append(f"| {method} | {', '.join(str(r['seed']) for r in mine)} | "
                         f"{_pct(final)} | {'-' if gap is None else f'{gap:+.2f}'} | "
                         f"{drop:.2f} | {'yes' if drop <= MAX_DROP else 'NO'} | "
                         f"{'-' if gap is None else ('yes' if gap >= -MAX_LOSS else 'NO')} |")
        lines.append("")
    lines += ["Commands:", ""] + [f"    {r['command']}" for r in results]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion"],
                        choices=sorted(PRESETS))
    parser.add_argument("--methods", nargs="+", default=["default", "dense", "reference"],
                        choices=sorted(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, default=Path("runs/sdsnn_quick"))
    args = parser.parse_args()
    path = RESULTS / "sdsnn_quick.json"
    results = json.loads(path.read_text()) if path.exists() else []
    for dataset in args.datasets:
        for seed in args.seeds:
            for method in args.methods:
                entry = run_one(dataset, method, seed, args.runs)
                results = [r for r in results if (r["dataset"], r["method"], r["seed"]) !=
                           (dataset, method, seed)] + [entry]
                order = {d: i for i, d in enumerate(PRESETS)}
                results.sort(key=lambda r: (order[r["dataset"]], r["method"], r["seed"]))
                RESULTS.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(results, indent=2))
                (RESULTS / "sdsnn_quick.md").write_text(_markdown(results))


if __name__ == "__main__":
    main()
