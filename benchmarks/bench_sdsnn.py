"""SD-SNN engine cost (CPU): the epoch-end update on the BrainCog CIFAR shapes, and the
per-batch training overhead on the small spiking models.

Shapes: six 3x3 convs 3-128-128-256-256-512-512 and the FC 32768x512 (21.3M weights), as in
the reference's CIFAR network. One timed call of ``SDSNNPruner.on_epoch_end`` in the
steady pruning phase (epoch > 2C): range update of EVERY layer, clipping, regeneration,
neuron pruning and rate updates. The reference's code needs 19.5 s for this step on these
machines (docs/SDSNN.md#sdsnn-cost; it updates only the FC layer's ranges).

The same step of the reference engine is timed interleaved in the same process with the
benchmark-only replica in ``benchmarks/reference_engine.py`` (Python-set range counters, FC
ranges only, numpy clipping and percentiles, set-based regrowth, argsort pruning with a
history set), on a copy of the same weights: that ratio is the headline. The range counter
alone is also compared on a smaller shape and cross-checked to give the same ranges.

Per-batch overhead (``step_overhead.py``): a default-mode training step (activity of the
period, gradient sums, the dead-unit gradient of regrowth, hard masks) over the same step
without the hooks, with about 1 unit in 7 of each pruned layer dead; then the same step
after the last developing step (``end``), when nothing is recorded.

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

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.bench_sdsnn
    from reference_engine import ReferenceSDSNN, ReferenceSetRanges
    from step_overhead import overhead_table, training_overhead
except ImportError:
    from benchmarks.reference_engine import ReferenceSDSNN, ReferenceSetRanges
    from benchmarks.step_overhead import overhead_table, training_overhead

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


def _braincog_pruner(mode: str) -> tuple[nn.Module, SDSNNConfig, SDSNNPruner]:
    """The BrainCog CIFAR shapes with BC CIFAR SD-SNN constants, after the first epoch step;
    every layer's ranges are updated (the reference: FC only)."""
    torch.manual_seed(0)
    model = BrainCogCifarShapes()
    cfg = SDSNNConfig(mode=mode, fc_rate=2.0, conv_rate=0.5, fc_gain=0.5, fc_gain_tail=0.0005,
                      regrow_count_fc=18, fc_pruned_fraction=50 / 32768,
                      conv_pruned_fraction=20 / 1152)
    pruner = SDSNNPruner(model, torch.zeros(1, 3, 32, 32), cfg)
    pruner.on_epoch_end(0)
    return model, cfg, pruner


def bench_epoch_end(mode: str, repeats: int) -> dict:
    model, cfg, pruner = _braincog_pruner(mode)
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


def bench_against_replica(mode: str, repeats: int) -> dict:
    """devprune's epoch-end update (all seven layers' ranges) and the reference engine replica
    (benchmarks/reference_engine.py: FC ranges only, as the reference) on copies of the same
    weights, interleaved in one process; wall and CPU medians."""
    model, cfg, pruner = _braincog_pruner(mode)
    weights = {la.name: la.weight.detach().clone() for la in pruner.layers}
    replica = ReferenceSDSNN(weights, cfg.count_threshold)
    wall = {"devprune": [], "replica": []}
    cpu = {"devprune": [], "replica": []}
    for i in range(repeats):
        epoch = cfg.prune_after + 1 + i
        _perturb(model, 1e-3)
        with torch.no_grad():
            for la in pruner.layers:
                weights[la.name].add_(torch.randn_like(weights[la.name]), alpha=1e-3)
        if cfg.signal == "gradient":
            pruner.grad_sums = {la.name: torch.randn_like(la.weight) for la in pruner.layers}
        for name, fn in (("devprune", lambda e=epoch: pruner.on_epoch_end(e)),
                         ("replica", lambda e=epoch: replica.epoch_end(e))):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    return {"mode": mode, "signal": cfg.signal, "repeats": repeats,
            "devprune_s": wall["devprune"], "replica_s": wall["replica"],
            "devprune_median_s": med["devprune"], "replica_median_s": med["replica"],
            "devprune_median_cpu_s": med_cpu["devprune"],
            "replica_median_cpu_s": med_cpu["replica"],
            "speedup": med["replica"] / med["devprune"],
            "cpu_speedup": med_cpu["replica"] / med_cpu["devprune"]}


def bench_set_vs_vectorised(shape: tuple[int, int], epochs: int, c: int = 3) -> dict:
    torch.manual_seed(1)
    w = torch.randn(shape) * 0.05
    vec = SpineRanges(w, c, 0.75)
    ref = ReferenceSetRanges(w.numpy(), c, 0.75)
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
    same = bool(np.allclose(vec.upper.numpy().ravel(), ref.pos, atol=1e-6)
                and np.allclose(vec.lower.numpy().ravel(), ref.neg, atol=1e-6))
    return {"shape": list(shape), "epochs": epochs, "vectorised_median_s": statistics.median(t_vec),
            "set_based_median_s": statistics.median(t_set),
            "ratio": statistics.median(t_set) / statistics.median(t_vec),
            "cpu_ratio": statistics.median(c_set) / statistics.median(c_vec),
            "same_ranges": same}


# -- per-batch overhead in training ------------------------------------------------------------
def _developing(pruner: SDSNNPruner) -> None:
    """In the developing phase, about 1 unit in 7 of each pruned layer dead (saved for
    regrowth as a step would)."""
    pruner.next_epoch = pruner.cfg.prune_after + 1
    for layer in pruner.layers:
        dead = torch.zeros(layer.num_units, dtype=torch.bool)
        dead[::7] = True
        if pruner.dead_grad is not None:
            pruner.dead_grad.save(layer.name, dead, pruner.structure)
        pruner.masks.prune_units(layer.name, dead)
    pruner.commit_masks()


def _past_the_end(pruner: SDSNNPruner) -> None:
    pruner.cfg.end = pruner.cfg.prune_after + 1
    pruner.next_epoch = pruner.cfg.end + 1


def sdsnn_overhead(model_name: str, batch: int, steps: int, repeats: int) -> dict:
    config = {"count_threshold": 2}  # the quick presets' C; steps at epoch ends only
    return training_overhead("sdsnn", config, model_name, (1, 28, 28), batch, steps, repeats,
                             develop=_developing, settle=_past_the_end)


def _markdown(result: dict) -> str:
    lines = ["# SD-SNN epoch-end update, BrainCog CIFAR shapes (CPU)", "",
             f"torch {result['torch']}, {result['threads']} threads; load average at start "
             f"{result['load_average_at_start'][0]:.1f}, at end "
             f"{result['load_average_at_end'][0]:.1f} on this shared machine; "
             f"{result['epoch_end'][0]['repeats']} repeats; "
             f"OMP_WAIT_POLICY={result['omp_wait_policy']}. One epoch-end "
             "update in the pruning phase (epoch > 2C) on 21.35M weights: devprune (every "
             "layer's ranges) vs the benchmark-only replica of the reference engine "
             "(`benchmarks/reference_engine.py`, FC ranges only as the reference), "
             "interleaved in one process; medians. The doc's quoted reference time is "
             f"{REFERENCE_SECONDS} s (another run).", "",
             "| devprune mode | regrowth signal | devprune wall s | replica wall s | "
             "speed-up (wall) | devprune CPU s | replica CPU s | speed-up (CPU) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["epoch_end"]:
        lines.append(f"| {r['mode']} | {r['signal']} | {r['devprune_median_s']:.3f} | "
                     f"{r['replica_median_s']:.2f} | {r['speedup']:.1f}x | "
                     f"{r['devprune_median_cpu_s']:.3f} | {r['replica_median_cpu_s']:.2f} | "
                     f"{r['cpu_speedup']:.1f}x |")
    s = result["set_vs_vectorised"]
    lines += ["", "Range counter only, same process, weight shape "
              f"{tuple(s['shape'])}: set-based replica {s['set_based_median_s']:.3f} s, "
              f"vectorised {s['vectorised_median_s']:.4f} s, ratio {s['ratio']:.0f}x "
              f"(CPU-time ratio {s['cpu_ratio']:.0f}x), "
              f"identical ranges: {s['same_ranges']}.", ""]
    if "training_overhead" in result:
        lines += ["## Per-batch training overhead (SD-SNN step / dense step)", "",
                  "Default mode in its developing phase (activity, gradient sums, the dead-unit "
                  "gradient, hard masks; 1 unit in 7 of each pruned layer dead), medians over "
                  "interleaved steps; 'after end': past the last developing step.", "",
                  *overhead_table(result["training_overhead"], "SD-SNN"), ""]
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
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
              "epoch_end": [bench_against_replica(m, args.repeats)
                            for m in ("reference", "default")],
              "set_vs_vectorised": bench_set_vs_vectorised(tuple(args.set_shape), epochs=6),
              "training_overhead": [sdsnn_overhead("snn-mlp", 100, 4, 20 * args.repeats),
                                    sdsnn_overhead("snn-small", 32, 8, 3 * args.repeats)]}
    result["load_average_at_end"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sdsnn.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "sdsnn.md").write_text(_markdown(result))
    print(_markdown(result))


if __name__ == "__main__":
    main()
