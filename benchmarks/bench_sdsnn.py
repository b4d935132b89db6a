"""Cost of one SD-SNN epoch-end update on the BrainCog CIFAR shapes (CPU).

Shapes: six 3x3 convs 3-128-128-256-256-512-512 and the FC 32768x512 (21.3M weights), as in
the reference's CIFAR network. One timed call of ``SDSNNPruner.on_epoch_end`` in the
steady pruning phase (epoch > 2C): range update of EVERY layer, clipping, regeneration,
neuron pruning and rate updates. The reference's code needs 19.5 s for this step on these
machines (docs DATA_AND_ENV.md; it updates only the FC layer's ranges).

The reference's Python-set range counter is not in this repository; ``SetBasedRanges``
below is a re-implementation of that approach (flat-index sets, intersections, per-index
Python updates) written from METHOD.md 3.3, used only to measure the speed ratio against
the vectorised counter in the same process on a smaller shape, and cross-checked to give
the same ranges.

Usage: .venv/bin/python benchmarks/bench_sdsnn.py [--repeats 3] [--threads 2]
Writes benchmarks/results/sdsnn.json and sdsnn.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from devprune.pruning.sdsnn import SDSNNConfig, SDSNNPruner
from devprune.pruning.spine_ranges import SpineRanges

REFERENCE_SECONDS = 19.5
RESULTS = Path(__file__).parent / "results"


class BrainCogCifarShapes(nn.Module):
    """Weight shapes of the reference CIFAR SNN (neurons are irrelevant to the epoch step)."""

    def __init__(self) -> None:
        super().__init__()
        widths = [3, 128, 128, 256, 256, 512, 512]
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, 3, padding=1) for a, b in itertools.pairwise(widths))
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(512 * 8 * 8, 512)
        self.out = nn.Linear(512, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = torch.relu(conv(x))
            if i in (1, 3):
                x = self.pool(x)
        return self.out(torch.relu(self.fc(x.flatten(1))))


def _perturb(model: nn.Module, scale: float) -> None:
    """Stand-in for one epoch of training: every weight moves a little."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p), alpha=scale)


def bench_epoch_end(mode: str, repeats: int) -> dict:
    torch.manual_seed(0)
    model = BrainCogCifarShapes()
    # BC CIFAR constants; all layers' ranges updated (the reference: FC only).
    cfg = SDSNNConfig(mode=mode, fc_rate=2.0, conv_rate=0.5, fc_gain=0.5, fc_gain_tail=0.0005,
                      regrow_count_fc=18, fc_pruned_fraction=50 / 32768,
                      conv_pruned_fraction=20 / 1152)
    pruner = SDSNNPruner(model, torch.zeros(1, 3, 32, 32), cfg)
    pruner.on_epoch_end(0)
    times, cpu = [], []
    for i in range(repeats):
        epoch = cfg.prune_after + 1 + i
        _perturb(model, 1e-3)
        if cfg.signal == "gradient":  # what on_after_backward would have summed this epoch
            pruner.grad_sums = {la.name: torch.randn_like(la.weight) for la in pruner.layers}
        start, start_cpu = time.perf_counter(), time.process_time()
        events = pruner.on_epoch_end(epoch)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    weights = sum(la.weight.numel() for la in pruner.layers)
    return {"mode": mode, "signal": cfg.signal, "weights": weights,
            "layers_with_range_updates": len(events["ranges"]),
            "seconds": times, "median_s": statistics.median(times),
            "cpu_seconds": cpu, "median_cpu_s": statistics.median(cpu),
            "speedup_vs_reference_19_5s": REFERENCE_SECONDS / statistics.median(times)}


# --------------------------------------------------------------------------------------------
# Set-based counter (the reference's approach, re-implemented for the ratio only)
# --------------------------------------------------------------------------------------------
class SetBasedRanges:
    """Upper/lower/shrink counters kept as Python sets and dicts over flat indices."""

    def __init__(self, w: np.ndarray, c: int, shrink: float) -> None:
        top = float(w.max())
        self.upper = np.full(w.size, top, dtype=np.float32)
        self.lower = np.full(w.size, -top, dtype=np.float32)
        self.c, self.shrink = c, shrink
        self.prev = {"up": set(), "low": set(), "dec": set()}
        self.count = {"up": {}, "low": {}, "dec": {}}
        self.over = {"up": {}, "low": {}}
        self.prev_mag = np.abs(w).astype(np.float32)

    def update(self, w: np.ndarray) -> None:
        self._bound(w, "up", set(np.where(w >= self.upper)[0].tolist()), self.upper)
        self._bound(w, "low", set(np.where(w <= self.lower)[0].tolist()), self.lower)
        mag = np.abs(w)
        now = set(np.where(mag < self.prev_mag)[0].tolist())
        both = now & self.prev["dec"]
        self.prev["dec"] = now
        count = {i: self.count["dec"].get(i, 0) + 1 for i in both}
        for i in [i for i, n in count.items() if n >= self.c]:
            self.upper[i] *= self.shrink
            self.lower[i] *= self.shrink
            del count[i]
        self.count["dec"] = count
        self.prev_mag = mag

    def _bound(self, w: np.ndarray, key: str, now: set, bound: np.ndarray) -> None:
        both = now & self.prev[key]
        self.prev[key] = now
        count = {i: self.count[key].get(i, 0) + 1 for i in both}
        over = {i: self.over[key].get(i, 0.0) + float(w[i] - bound[i]) for i in both}
        for i in [i for i, n in count.items() if n >= self.c]:
            bound[i] += over[i] / self.c
            del count[i], over[i]
        self.count[key], self.over[key] = count, over


def bench_set_vs_vectorised(shape: tuple[int, int], epochs: int, c: int = 3) -> dict:
    torch.manual_seed(1)
    w = torch.randn(shape) * 0.05
    vec = SpineRanges(w, c, 0.75)
    ref = SetBasedRanges(w.numpy().ravel().copy(), c, 0.75)
    t_vec, t_set, c_vec, c_set = [], [], [], []
    drift = torch.randn(shape) * 0.01  # persistent drift so bounds are crossed and counted
    for _ in range(epochs):
        w = w + drift + torch.randn(shape) * 0.005
        start, start_cpu = time.perf_counter(), time.process_time()
        vec.update(w)
        t_vec.append(time.perf_counter() - start)
        c_vec.append(time.process_time() - start_cpu)
        flat = w.numpy().ravel().copy()
        start, start_cpu = time.perf_counter(), time.process_time()
        ref.update(flat)
        t_set.append(time.perf_counter() - start)
        c_set.append(time.process_time() - start_cpu)
    same = bool(np.allclose(vec.upper.numpy().ravel(), ref.upper, atol=1e-6)
                and np.allclose(vec.lower.numpy().ravel(), ref.lower, atol=1e-6))
    return {"shape": list(shape), "epochs": epochs, "vectorised_median_s": statistics.median(t_vec),
            "set_based_median_s": statistics.median(t_set),
            "ratio": statistics.median(t_set) / statistics.median(t_vec),
            "cpu_ratio": statistics.median(c_set) / statistics.median(c_vec),
            "same_ranges": same}


def _markdown(result: dict) -> str:
    lines = ["# SD-SNN epoch-end update, BrainCog CIFAR shapes (CPU)", "",
             f"torch {result['torch']}, {result['threads']} threads; reference: "
             f"{REFERENCE_SECONDS} s (docs DATA_AND_ENV.md, FC ranges only). Load average at "
             f"start {result['load_average_at_start'][0]:.1f} on this shared machine "
             "(absolute times scale with it; the same-process ratio below does not).", "",
             "| mode | regrowth signal | weights | layers with range updates | median wall s | "
             "median CPU s | 19.5 s / wall | 19.5 s / CPU |", "|---|---|---|---|---|---|---|---|"]
    for r in result["epoch_end"]:
        lines.append(f"| {r['mode']} | {r['signal']} | {r['weights']:,} | "
                     f"{r['layers_with_range_updates']} | {r['median_s']:.3f} | "
                     f"{r['median_cpu_s']:.3f} | {r['speedup_vs_reference_19_5s']:.1f}x | "
                     f"{REFERENCE_SECONDS / r['median_cpu_s']:.1f}x |")
    s = result["set_vs_vectorised"]
    lines += ["", "Range counter only, same process, weight shape "
              f"{tuple(s['shape'])}: set-based re-implementation {s['set_based_median_s']:.3f} s, "
              f"vectorised {s['vectorised_median_s']:.4f} s, ratio {s['ratio']:.0f}x "
              f"(CPU-time ratio {s['cpu_ratio']:.0f}x), "
              f"identical ranges: {s['same_ranges']}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set-shape", type=int, nargs=2, default=[512, 2048])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"torch": torch.__version__, "threads": args.threads,
              "load_average_at_start": os.getloadavg(),
              "epoch_end": [bench_epoch_end(m, args.repeats) for m in ("reference", "default")],
              "set_vs_vectorised": bench_set_vs_vectorised(tuple(args.set_shape), epochs=6)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sdsnn.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "sdsnn.md").write_text(_markdown(result))
    print(_markdown(result))


if __name__ == "__main__":
    main()
