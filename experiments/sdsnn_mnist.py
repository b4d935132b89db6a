"""Real MNIST / Fashion-MNIST: dense vs SD-SNN quick presets (spiking MLP 784-800-10, T=4).

Runs ``devprune train`` for each (dataset, method) pair with the same epochs and seed, then
collects per-epoch test accuracy, connectivity, neurons pruned, synapses regenerated and the
FC rate from each run's metrics.jsonl into experiments/results/sdsnn_mnist.json (+ .md).

Usage (background; ~5-10 min per full-data run on 2 quiet CPU threads):
    .venv/bin/python experiments/sdsnn_mnist.py [--epochs 10] [--datasets mnist fashion]
        [--set data.limit_train=12000 prune.sdsnn.count_threshold=1 ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import RESULTS, read_metrics, run_train

# The dense baseline is the SD-SNN preset itself with pruning off, so data, model and
# training recipe are identical by construction.
PRESETS = {
    ("mnist", "dense"): "mnist-mlp-sdsnn-quick",
    ("mnist", "sdsnn"): "mnist-mlp-sdsnn-quick",
    ("fashion", "dense"): "fashion-mlp-sdsnn-quick",
    ("fashion", "sdsnn"): "fashion-mlp-sdsnn-quick",
}
METHOD_OVERRIDES = {"dense": ["prune.method=none"], "sdsnn": []}


def _train(preset: str, epochs: int, out: Path, overrides: list[str]) -> float:
    return run_train(preset, out, [f"train.epochs={epochs}", *overrides])


def _epoch_rows(run: Path) -> list[dict]:
    rows = []
    for rec in read_metrics(run):
        pruning = rec.get("pruning") or {}
        regrowth = pruning.get("regrowth", {})
        rows.append({
            "epoch": rec["epoch"],
            "test_accuracy": rec["test_accuracy"],
            "val_accuracy": rec.get("val_accuracy"),
            "connectivity": rec.get("connectivity"),
            "neurons_pruned": sum(pruning.get("neurons_pruned", {}).values()),
            "synapses_regenerated": sum(regrowth.get("synapses_regenerated", {}).values()),
            "rates": pruning.get("rates"),
            "epoch_time_s": rec.get("epoch_time_s"),
        })
    return rows


def _markdown(results: list[dict]) -> str:
    lines = ["# SD-SNN quick presets vs dense (spiking MLP 784-800-10, T=4, CPU)", "",
             f"Overrides on every run: {' '.join(results[0].get('overrides', []))}. "
             "Connectivity: non-zero / total weights of the prunable layers.", "",
             "| dataset | method | epochs | final test acc | connectivity | neurons pruned "
             "(total) | wall s |", "|---|---|---|---|---|---|---|"]
    for r in results:
        last = r["epochs"][-1]
        conn = last["connectivity"]
        lines.append(f"| {r['dataset']} | {r['method']} | {len(r['epochs'])} | "
                     f"{last['test_accuracy']:.4f} | "
                     f"{conn if conn is None else f'{conn:.3f}'} | "
                     f"{sum(e['neurons_pruned'] for e in r['epochs'])} | "
                     f"{r['wall_s']:.0f} |")
    for r in results:
        if r["method"] != "sdsnn":
            continue
        lines += ["", f"## {r['dataset']} SD-SNN per epoch", "",
                  "| epoch | test acc | connectivity | neurons pruned | synapses regenerated "
                  "| FC rate % |", "|---|---|---|---|---|---|"]
        for e in r["epochs"]:
            rate = next(iter(e["rates"].values())) if e["rates"] else None
            conn = e["connectivity"]
            lines.append(f"| {e['epoch']} | {e['test_accuracy']:.4f} | "
                         f"{conn if conn is None else f'{conn:.3f}'} | {e['neurons_pruned']} | "
                         f"{e['synapses_regenerated']} | "
                         f"{'' if rate is None else f'{rate:.1f}'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion"])
    parser.add_argument("--runs", type=Path, default=Path("runs/sdsnn_mnist"))
    parser.add_argument("--set", nargs="*", default=[], dest="overrides",
                        help="extra config overrides for every run, e.g. data.limit_train=12000")
    parser.add_argument("--rewrite-markdown", action="store_true",
                        help="only rebuild the .md table from the existing JSON")
    args = parser.parse_args()
    if args.rewrite_markdown:
        results = json.loads((RESULTS / "sdsnn_mnist.json").read_text())
        (RESULTS / "sdsnn_mnist.md").write_text(_markdown(results))
        return
    results = []
    for dataset in args.datasets:
        for method in ("sdsnn", "dense"):
            out = args.runs / f"{dataset}-{method}"
            wall = _train(PRESETS[dataset, method], args.epochs, out,
                          [*args.overrides, *METHOD_OVERRIDES[method]])
            summary = json.loads((out / "summary.json").read_text())
            results.append({"dataset": dataset, "method": method,
                            "preset": PRESETS[dataset, method], "wall_s": wall,
                            "overrides": [f"train.epochs={args.epochs}", *args.overrides],
                            "summary": summary, "epochs": _epoch_rows(out)})
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / "sdsnn_mnist.json").write_text(json.dumps(results, indent=2))
            (RESULTS / "sdsnn_mnist.md").write_text(_markdown(results))


if __name__ == "__main__":
    main()
