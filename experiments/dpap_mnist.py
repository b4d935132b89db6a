"""Real-data DPAP runs: dense vs DPAP (default mode) vs DPAP (reference mode) on MNIST and
Fashion-MNIST with the quick presets, same recipe and seed, through ``devprune train``.

    .venv/bin/python experiments/dpap_mnist.py [--datasets mnist fashion] [--runs DIR]

Writes ``experiments/results/dpap_mnist.json`` (and a Markdown table beside it) after every
run, so a partial result survives an interrupted session. Each entry: final test accuracy,
test accuracy at the best-validation epoch, connectivity of the prunable layers and of all
weights, units alive per layer, and the first epoch after which the structure stopped
changing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import ROOT, read_metrics, read_summary, run_train

VARIANTS = {  # name -> preset pattern ({ds} = mnist | fashion)
    "dense": "{ds}-mlp-dense-quick",
    "dpap-default": "{ds}-mlp-dpap-quick",
    "dpap-reference": "{ds}-mlp-dpap-quick-reference",
}


def stable_epoch(records: list[dict]) -> int | None:
    """First epoch (1-based) after which the prunable connectivity never changed again."""
    series = [(r.get("pruning") or {}).get("connectivity") for r in records]
    if not series or series[-1] is None:
        return None
    for i in range(len(series)):
        if all(c == series[-1] for c in series[i:]):
            return i + 1
    return None


def summarise(run: Path) -> dict:
    summary = read_summary(run)
    records = read_metrics(run)
    pruning = records[-1].get("pruning") or {}
    return {
        "final_test_accuracy": summary["final"]["test_accuracy"],
        "best_val": summary["best_val"],
        "connectivity_prunable": pruning.get("connectivity", 1.0),
        "connectivity_all_weights": summary["connectivity"],
        "params_nonzero": summary["params_nonzero"], "params_total": summary["params_total"],
        "units": summary["units"],
        "epochs": summary["epochs"],
        "epochs_to_stable_structure": stable_epoch(records) if pruning else None,
        "connectivity_per_epoch": [(r.get("pruning") or {}).get("connectivity")
                                   for r in records],
        "wall_time_s": summary["wall_time_s"],
    }


def markdown(results: dict) -> str:
    lines = ["| dataset | variant | final test % | test % at best val | prunable weights kept % "
             "| hidden units alive | stable after epoch |", "|---|---|---|---|---|---|---|"]
    for ds, variants in results.items():
        for name, r in variants.items():
            units = r["units"].get("features.layer1.fc", {})
            best = r["best_val"]["test_accuracy"] * 100 if r["best_val"] else float("nan")
            lines.append(
                f"| {ds} | {name} | {100 * r['final_test_accuracy']:.2f} | {best:.2f} | "
                f"{100 * r['connectivity_prunable']:.1f} | {units.get('alive')}/"
                f"{units.get('total')} | {r['epochs_to_stable_structure']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--runs", default="runs/dpap_mnist", help="run directories")
    parser.add_argument("--out", default=str(ROOT / "experiments/results"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result_file = out / "dpap_mnist.json"
    results = json.loads(result_file.read_text()) if result_file.exists() else {}
    for ds in args.datasets:
        for name in args.variants:
            preset = VARIANTS[name].format(ds=ds)
            run = Path(args.runs) / f"{ds}-{name}"
            # same recipe for all three: the DPAP presets inherit the dense preset's settings
            run_train(preset, run, cwd=ROOT, echo=True)
            results.setdefault(ds, {})[name] = {"preset": preset, **summarise(run)}
            result_file.write_text(json.dumps(results, indent=2))
            (out / "dpap_mnist.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
