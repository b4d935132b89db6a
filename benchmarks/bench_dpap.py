"""DPAP engine cost, measured as ratios in one process (CPU timings move ~2x between runs).

1. Per-batch overhead: one training step (forward, backward, AdamW step) with the DPAP hooks
   divided by the same step without them, for snn-mlp and snn-small, in wall and CPU time,
   and again once DPAP's ``end`` step has passed (nothing recorded: ~1). Target <= 1.10.
2. BrainCog CIFAR shapes (six 3x3 convs 128-128-256-256-512-512 at 32/32/16/16/8/8, FC
   32768x512, batch 50, T=8): the per-batch bookkeeping (trace readouts of every recorded
   tensor + BCM / activity / threshold updates) and one epoch-end pruning step, each timed
   interleaved with the benchmark-only replica of the reference engine
   (benchmarks/reference_engine.py) in the same process. The authors' code's times measured
   earlier (0.15-0.43 s and 0.35-0.66 s, docs/DPAP.md#dpap-cost) are kept for context only.
3. Memory: bytes of the pruner's own state (statistics, reserves, masks) and the peak RSS
   growth of building it and taking a step.

    .venv/bin/python benchmarks/bench_dpap.py [--quick] [--out benchmarks/results]

Writes ``dpap.json`` and ``dpap.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

from devprune.models import build_model
from devprune.pruning import build_pruner
from devprune.pruning.dpap import DPAPConfig

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.bench_dpap
    from reference_engine import (
        BRAINCOG_LAYERS,
        ReferenceDPAPBookkeeping,
        ReferenceDPAPMask,
        braincog_module_outputs,
    )
    from step_overhead import overhead_table, training_overhead
except ImportError:
    from benchmarks.reference_engine import (
        BRAINCOG_LAYERS,
        ReferenceDPAPBookkeeping,
        ReferenceDPAPMask,
        braincog_module_outputs,
    )
    from benchmarks.step_overhead import overhead_table, training_overhead

REFERENCE = {"bookkeeping_s": [0.15, 0.43], "epoch_step_s": [0.35, 0.66]}


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# -- 1. per-batch overhead in training ---------------------------------------------------------
def _past_the_end(pruner) -> None:
    pruner.cfg.end, pruner.next_step = 0, 1
    assert not pruner.developing()


def dpap_overhead(model_name: str, batch: int, steps: int, repeats: int, mode: str) -> dict:
    return training_overhead("dpap", {"mode": mode}, model_name, (1, 28, 28), batch, steps,
                             repeats, settle=_past_the_end)


# -- 2. BrainCog CIFAR shapes, against the reference engine replica in the same process ------
def _fire_hooks(module: torch.nn.Module, inputs: tuple, output) -> None:
    for hook in module._forward_hooks.values():
        hook(module, inputs, output)


def braincog_bookkeeping(batch: int, steps: int, repeats: int) -> dict:
    """Per-batch bookkeeping: devprune's forward hooks + ``on_batch_end`` on the real
    snn-braincog-cifar model (the hooks are fed the module outputs of one batch, the same
    tensor objects a forward would pass), vs the replica's trace + BCM update."""
    outputs = braincog_module_outputs(batch, steps)
    torch.manual_seed(0)
    model = build_model("snn-braincog-cifar", in_shape=(3, 32, 32), num_classes=10,
                        time_steps=steps)
    model.train()
    pruner = build_pruner("dpap", model, None, DPAPConfig(start=10**6))
    modules = dict(model.named_modules())
    taps = pruner.recorder.taps
    replica = ReferenceDPAPBookkeeping(outputs, BRAINCOG_LAYERS, batch, steps)
    per_step = [list(step) for step in zip(*(o.unbind(0) for o in outputs), strict=True)]

    def devprune_batch() -> None:
        pruner.on_batch_start()
        for tap, (pre, post) in zip(taps, BRAINCOG_LAYERS, strict=True):
            _fire_hooks(modules[tap.pre_module], (outputs[pre],), None)
            _fire_hooks(modules[tap.post_module], (), outputs[post])
        pruner.on_batch_end()

    def reference_batch() -> None:
        replica.update(per_step)

    dev, ref = _interleaved(devprune_batch, reference_batch, repeats)
    return {"batch": batch, "T": steps, "seconds": dev, "reference_replica_s": ref,
            "speedup": ref / dev, "quoted_reference_s": REFERENCE["bookkeeping_s"]}


def _interleaved(dev_fn, ref_fn, repeats: int) -> tuple[float, float]:
    dev_fn()
    ref_fn()  # warm-up
    dev, ref = [], []
    for _ in range(repeats):
        dev.append(_median_time(dev_fn, 1))
        ref.append(_median_time(ref_fn, 1))
    return statistics.median(dev), statistics.median(ref)


def braincog_epoch_step(mode: str, repeats: int) -> dict:
    torch.manual_seed(0)
    model = build_model("snn-braincog-cifar", in_shape=(3, 32, 32), num_classes=10,
                        time_steps=8)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pruner = build_pruner("dpap", model, None, DPAPConfig(mode=mode, start=0))
    gen = torch.Generator().manual_seed(1)
    for layer in pruner.stats.values():  # statistics as after some training
        layer.bcm.copy_(torch.randn(layer.bcm.shape, generator=gen).abs_().pow_(2))
        layer.activity.copy_(torch.rand(layer.activity.shape, generator=gen) * 100)
    state_bytes = sum(t.numel() * t.element_size() for s in pruner.stats.values()
                      for t in s.tensors().values())
    state_bytes += sum(t.numel() * t.element_size() for store in
                       (pruner.unit_reserve, pruner.synapse_reserve) for t in store.values())
    mask_bytes = sum(pruner.masks[n].numel() for n in pruner.masks.names())
    # the replica works on its own copy of the weights and the same statistics
    weights = {la.name: la.weight.detach().clone() for la in pruner.layers}
    kinds = {la.name: "conv" if la.kind == "conv" else "fc" for la in pruner.layers}
    replica = ReferenceDPAPMask(weights, kinds)
    bcm = {n: s.bcm.clone() for n, s in pruner.stats.items()}
    activity = {n: s.activity.clone() for n, s in pruner.stats.items()}
    step = [5, 5]

    def devprune_step() -> None:
        pruner.prune_step(step[0])
        step[0] += 1

    def reference_step() -> None:
        replica.step(bcm, activity, step[1])
        step[1] += 1

    dev, ref = _interleaved(devprune_step, reference_step, repeats)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n_weights = sum(p.numel() for p in model.parameters())
    return {"mode": mode, "seconds": dev, "reference_replica_s": ref, "speedup": ref / dev,
            "quoted_reference_s": REFERENCE["epoch_step_s"],
            "connectivity_after": pruner.masks.connectivity(),
            "state_mb": state_bytes / 2**20, "mask_mb": mask_bytes / 2**20,
            "model_weights_mb": n_weights * 4 / 2**20,
            "peak_rss_growth_mb": (rss_after - rss_before) / 1024}


# -- report ------------------------------------------------------------------------------------
def markdown(result: dict) -> str:
    lines = ["# DPAP engine benchmark", "",
             f"CPU, {result['threads']} threads, torch {result['torch']}; ratios are measured "
             "in one process (interleaved), absolute times move with machine load "
             f"(1-min load average {result['load_average_at_start'][0]:.1f} at start, "
             f"{result['load_average_at_end'][0]:.1f} at end; {result['repeats']} repeats; "
             f"OMP_WAIT_POLICY={result['omp_wait_policy']}).", "",
             "## Per-batch training overhead (DPAP step / dense step; target <= 1.10)", "",
             "Ratios of medians over interleaved steps: wall time, and the process's CPU time "
             "(less sensitive to other processes on the shared machine). 'After end': the "
             "same step once DPAP's `end` step has passed (nothing recorded any more).", "",
             *overhead_table(result["training_overhead"], "DPAP")]
    b = result["braincog_bookkeeping"]
    lines += ["", "## BrainCog CIFAR shapes (6 convs + FC 32768x512), same process", "",
              "The reference engine is `benchmarks/reference_engine.py` (a replica of the "
              "authors' computation, benchmark-only), timed interleaved with devprune; "
              "medians. The doc's quoted reference times (another run) are in the last column.",
              "", "| measurement | devprune s | replica s | speed-up (same run) | quoted ref s |",
              "|---|---|---|---|---|",
              f"| per-batch bookkeeping (batch {b['batch']}, T={b['T']}) | {b['seconds']:.3f} | "
              f"{b['reference_replica_s']:.3f} | {b['speedup']:.1f}x | 0.15-0.43 |"]
    for s in result["braincog_epoch_step"]:
        lines.append(f"| epoch-end pruning step ({s['mode']} mode) | {s['seconds']:.3f} | "
                     f"{s['reference_replica_s']:.3f} | {s['speedup']:.1f}x | 0.35-0.66 |")
    s = result["braincog_epoch_step"][0]
    lines += ["", "## Memory (BrainCog CIFAR net, 21.4 M weights)", "",
              f"- DPAP statistics + reserves: {s['state_mb']:.1f} MB; masks: "
              f"{s['mask_mb']:.1f} MB (bool); the model's weights: {s['model_weights_mb']:.1f} MB",
              f"- peak RSS growth while building the pruner and stepping: "
              f"{s['peak_rss_growth_mb']:.1f} MB", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 5 if args.quick else 15
    result = {"torch": torch.__version__, "threads": args.threads,
              "machine": platform.processor() or platform.machine(), "repeats": repeats,
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
              "load_average_at_start": os.getloadavg()}
    result["training_overhead"] = [
        dpap_overhead("snn-mlp", 100, 4, 4 * repeats, mode) for mode in ("default", "reference")
    ] + [dpap_overhead("snn-small", 32, 8, max(3, repeats // 3), mode)
         for mode in ("default", "reference")]
    result["braincog_epoch_step"] = [braincog_epoch_step(m, max(3, repeats // 3))
                                     for m in ("default", "reference")]
    result["braincog_bookkeeping"] = braincog_bookkeeping(50, 8, max(3, repeats // 3))
    result["load_average_at_end"] = os.getloadavg()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dpap.json").write_text(json.dumps(result, indent=2))
    (out / "dpap.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
