"""Masked vs compacted inference on the structure a real DPAP run produced.

    .venv/bin/python benchmarks/bench_compact_dpap_run.py RUN [--batches 32 128] [--threads 1]

Loads the run's best checkpoint, compacts it, and times both models on random [0,1] images of
the run's input shape in one process (interleaved, median of repeats). The ideal ratio is the
ratio of dense MACs of the weight layers. Writes benchmarks/results/compact_dpap_run.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from devprune.compact import compact
from devprune.compact.commands import load_run
from devprune.structure import WEIGHT_LAYERS

OUT = Path(__file__).resolve().parent / "results"


def dense_macs(model: nn.Module, x: torch.Tensor) -> int:
    total = 0

    def count(module: nn.Module, _inputs, output) -> None:
        nonlocal total
        per_output = module.weight[0].numel()  # fan-in per output element
        total += output.numel() * per_output

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, WEIGHT_LAYERS)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return total


def median_time(model: nn.Module, x: torch.Tensor, repeats: int) -> float:
    times = []
    with torch.no_grad():
        model(x)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    masked, masks, example = load_run(args.run)[:3]
    masked.eval()
    masks.apply()
    small = compact(masked, masks, example).eval()
    rows = []
    for batch in args.batches:
        x = torch.rand(batch, *example.shape[1:])
        ideal = dense_macs(masked, x) / dense_macs(small, x)
        t_masked = t_small = 0.0
        for _ in range(3):  # interleave so load changes hit both alike
            t_masked += median_time(masked, x, args.repeats)
            t_small += median_time(small, x, args.repeats)
        rows.append({"batch": batch, "masked_ms": 1e3 * t_masked / 3,
                     "compact_ms": 1e3 * t_small / 3, "speedup": t_masked / t_small,
                     "ideal": ideal, "of_ideal": (t_masked / t_small) / ideal})
    params = {"masked": sum(p.numel() for p in masked.parameters()),
              "compact": sum(p.numel() for p in small.parameters())}
    result = {"run": str(args.run), "threads": args.threads, "params": params, "rows": rows}
    OUT.mkdir(exist_ok=True)
    (OUT / "compact_dpap_run.json").write_text(json.dumps(result, indent=2))
    lines = [f"# Masked vs compacted, DPAP-pruned run `{args.run.name}` "
             f"({args.threads} thread(s))", "",
             f"parameters {params['masked']:,} -> {params['compact']:,}", "",
             "| batch | masked ms | compact ms | speed-up | ideal (MACs) | of ideal |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['batch']} | {r['masked_ms']:.2f} | {r['compact_ms']:.2f} | "
              f"{r['speedup']:.2f}x | {r['ideal']:.2f}x | {r['of_ideal']:.2f} |" for r in rows]
    (OUT / "compact_dpap_run.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
