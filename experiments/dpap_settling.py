"""When does DPAP's structure stop changing? The quick MLP presets (cadence fitted to the run,
docs/DPAP.md#dpap-run-length) against dense, per seed.

For each dataset and seed it runs the DPAP quick preset as shipped and reads from
metrics.jsonl every epoch's test accuracy, connectivity and hidden units alive; the
*settling epoch* is the last epoch in which connectivity or any unit count changed. Dense
runs are those of experiments/sdsnn_quick.py (same data, model, recipe and seed; runs
``runs/sdsnn_quick/<dataset>-dense-s<seed>``), run here when missing. Resumable: a run whose
summary.json exists is not re-run. Writes experiments/results/dpap_settling.{json,md}.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/dpap_settling.py \\
        [--datasets mnist fashion] [--seeds 0 1 2]
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

PRESETS = {"mnist": "mnist-mlp-dpap-quick", "fashion": "fashion-mlp-dpap-quick"}
DENSE = {"mnist": "mnist-mlp-sdsnn-quick", "fashion": "fashion-mlp-sdsnn-quick"}
COMMON = ["train.threads=1"]


def _train(preset: str, out: Path, overrides: list[str]) -> str:
    ensure_run(preset, out, overrides, log=out.with_suffix(".log"))
    return show_command(train_command(preset, out, overrides))


def _epochs(run: Path) -> list[dict]:
    return [{"epoch": rec["epoch"] + 1, "test": rec["test_accuracy"],
             "connectivity": rec.get("connectivity"),
             "units": {name: layer["units_alive"] for name, layer in
                       (rec.get("layers") or {}).items()}}
            for rec in read_metrics(run)]


def settling_epoch(rows: list[dict]) -> int:
    """The last epoch whose connectivity or unit counts differ from the epoch before
    (1 = the structure never changed after the first epoch)."""
    last = 1
    for before, after in itertools.pairwise(rows):
        if (before["connectivity"], before["units"]) != (after["connectivity"], after["units"]):
            last = after["epoch"]
    return last


def run_one(dataset: str, seed: int, runs: Path) -> dict:
    overrides = [*COMMON, f"train.seed={seed}"]
    out = runs / f"{dataset}-dpap-s{seed}"
    command = _train(PRESETS[dataset], out, overrides)
    dense_out = Path("runs/sdsnn_quick") / f"{dataset}-dense-s{seed}"
    _train(DENSE[dataset], dense_out, [*overrides, "prune.method=none"])
    rows = _epochs(out)
    summary = read_summary(out)
    return {"dataset": dataset, "seed": seed, "command": command, "epochs": rows,
            "final_test": rows[-1]["test"], "dense_test": _epochs(dense_out)[-1]["test"],
            "connectivity": rows[-1]["connectivity"], "units": rows[-1]["units"],
            "settling_epoch": settling_epoch(rows), "wall_s": summary.get("wall_time_s")}


def markdown(results: list[dict]) -> str:
    lines = ["# DPAP quick presets: when the structure settles", "",
             "Each run: `devprune train PRESET --set train.threads=1 train.seed=S` (the preset "
             "as shipped: `cadence: fit`, docs/DPAP.md#dpap-run-length); dense: the same "
             "recipe without pruning (`runs/sdsnn_quick/<dataset>-dense-s<seed>`). Settling "
             "epoch: the last epoch in which connectivity or a unit count changed.", "",
             "| dataset | seed | dense test % | DPAP test % | DPAP - dense | kept % | hidden "
             "units per epoch | settling epoch / epochs |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        units = " -> ".join(str(next(iter(e["units"].values()), "-")) for e in r["epochs"])
        lines.append(f"| {r['dataset']} | {r['seed']} | {100 * r['dense_test']:.2f} | "
                     f"{100 * r['final_test']:.2f} | "
                     f"{100 * (r['final_test'] - r['dense_test']):+.2f} | "
                     f"{100 * r['connectivity']:.1f} | {units} | "
                     f"{r['settling_epoch']} / {len(r['epochs'])} |")
    lines += ["", "| dataset | seeds | mean DPAP - dense (pts) | mean kept % | settled before the "
              "last epoch |", "|---|---|---|---|---|"]
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        rows = [r for r in results if r["dataset"] == dataset]
        settled = all(r["settling_epoch"] < len(r["epochs"]) for r in rows)
        lines.append(f"| {dataset} | {len(rows)} | "
                     f"{mean(100 * (r['final_test'] - r['dense_test']) for r in rows):+.2f} | "
                     f"{mean(100 * r['connectivity'] for r in rows):.1f} | "
                     f"{'yes' if settled else 'NO'} |")
    lines += ["", "Commands:", ""] + [f"    {r['command']}" for r in results]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, default=Path("runs/dpap_settling"))
    args = parser.parse_args()
    path = RESULTS / "dpap_settling.json"
    results = json.loads(path.read_text()) if path.exists() else []
    for dataset in args.datasets:
        for seed in args.seeds:
            entry = run_one(dataset, seed, args.runs)
            results = [r for r in results if (r["dataset"], r["seed"]) != (dataset, seed)]
            results = sorted([*results, entry], key=lambda r: (r["dataset"], r["seed"]))
            path.write_text(json.dumps(results, indent=2))
            (RESULTS / "dpap_settling.md").write_text(markdown(results))


if __name__ == "__main__":
    main()
