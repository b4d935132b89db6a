"""DPAP's time side (devprune's extension, prune.dpap.temporal): its effect on accuracy and SOPs.

For each case the same preset runs with pruning in space only and in space and time (same
seed, data and recipe); the table gives the learnt number of simulated steps, test accuracy,
connectivity and the last-epoch workload per sample (Effective ACs / MACs, energy), which is
counted per simulated step. Cases:

* derived events (``mnist-dvs-derived``, snn-small, 8 frames): ``derived-events-snn-dpap-quick``
  vs ``derived-events-snn-dpap-temporal-quick``;
* real MNIST, spiking MLP with direct (analog) input, T = 4: ``mnist-mlp-dpap-quick`` without
  and with ``prune.dpap.temporal=true`` at the default threshold (c = 0.2) and at c = 0.5.

Writes experiments/results/temporal.{json,md}. Usage (about 12 min on 2 quiet CPU threads):
    .venv/bin/python experiments/temporal.py [--runs /tmp/temporal_runs] [--reuse]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import RESULTS, read_metrics, read_summary, run_train, show_command, train_command

COMMON = ["train.threads=1", "train.compact_every=0"]  # as measured: masked runs
CASES = [  # (case, label, preset, overrides)
    ("derived events", "space", "derived-events-snn-dpap-quick", []),
    ("derived events", "space + time (c 0.5)", "derived-events-snn-dpap-temporal-quick", []),
    ("MNIST direct T=4", "space", "mnist-mlp-dpap-quick", []),
    ("MNIST direct T=4", "space + time (c 0.2)", "mnist-mlp-dpap-quick",
     ["prune.dpap.temporal=true"]),
    ("MNIST direct T=4", "space + time (c 0.5)", "mnist-mlp-dpap-quick",
     ["prune.dpap.temporal=true", "prune.dpap.time_offset=0.5"]),
]


def _row(case: str, label: str, run: Path, command: str, seconds: float | None) -> dict:
    summary = read_summary(run)
    records = read_metrics(run)
    workload = summary["workload"]
    ops = workload["SynapticOperations"]
    steps = [(r["pruning"].get("time") or {}).get("time_steps") for r in records]
    return {
        "case": case, "label": label, "command": command,
        "time_steps": summary["time_steps"], "time_steps_per_epoch": steps,
        "test_accuracy": summary["final"]["test_accuracy"],
        "best_val_test_accuracy": (summary["best_val"] or {}).get("test_accuracy"),
        "connectivity": summary["connectivity"],
        "effective_acs": ops["Effective_ACs"], "effective_macs": ops["Effective_MACs"],
        "energy_uj": workload["Energy_pJ"] / 1e6, "wall_s": seconds,
    }


def _markdown(rows: list[dict]) -> str:
    lines = [
        "# DPAP in space vs in space and time (devprune's time-side extension)", "",
        "One seed per run; workload per test sample at the last epoch (1,000-sample measure "
        "subset), counted over the simulated steps. Relative changes are against the "
        "space-only run of the same case.", "",
        "| case | pruning | T learnt (per epoch) | test acc | connectivity | Effective ACs "
        "| Effective MACs | energy µJ | Δ energy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = {}
    for r in rows:
        base.setdefault(r["case"], r)
        ref = base[r["case"]]
        delta = r["energy_uj"] / ref["energy_uj"] - 1.0
        per_epoch = "/".join(str(t) for t in r["time_steps_per_epoch"] if t is not None)
        learnt = f"{r['time_steps']} ({per_epoch})" if per_epoch else f"{r['time_steps']} (fixed)"
        lines.append(
            f"| {r['case']} | {r['label']} | {learnt} | {100 * r['test_accuracy']:.2f}% | "
            f"{100 * r['connectivity']:.1f}% | {r['effective_acs']:,.0f} | "
            f"{r['effective_macs']:,.0f} | {r['energy_uj']:.3f} | {100 * delta:+.0f}% |")
    lines += ["", "Commands:", ""] + [f"- `{r['command']}`" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("/tmp/temporal_runs"))
    parser.add_argument("--reuse", action="store_true", help="keep finished runs in --runs")
    args = parser.parse_args()
    rows = []
    for index, (case, label, preset, overrides) in enumerate(CASES):
        out = args.runs / f"{index}-{preset}"
        settings = [*COMMON, *overrides]
        seconds = None
        if not (args.reuse and (out / "summary.json").exists()):
            if out.exists():
                raise SystemExit(f"{out} exists: pass --reuse or remove it")
            seconds = run_train(preset, out, settings, echo=True)
        rows.append(_row(case, label, out, show_command(train_command(preset, "RUN", settings)),
                         seconds))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "temporal.json").write_text(json.dumps(rows, indent=2) + "\n")
    (RESULTS / "temporal.md").write_text(_markdown(rows))
    print(_markdown(rows))


if __name__ == "__main__":
    main()
