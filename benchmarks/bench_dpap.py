"""DPAP engine cost, measured as ratios in one process (CPU timings move ~2x between runs).

1. Per-batch overhead: one training step (forward, backward, AdamW step) with the DPAP hooks
   divided by the same step without them, for snn-mlp and snn-small. Target <= 1.10.
2. BrainCog CIFAR shapes (six 3x3 convs 128-128-256-256-512-512 at 32/32/16/16/8/8, FC
   32768x512, batch 50, T=8): the per-batch bookkeeping (trace readouts of every recorded
   tensor + BCM / activity / threshold updates) and one epoch-end pruning step. The
   reference engine took 0.15-0.43 s and 0.35-0.66 s here (docs DATA_AND_ENV.md).
3. Memory: bytes of the pruner's own state (statistics, reserves, masks) and the peak RSS
   growth of building it and taking a step.

    .venv/bin/python benchmarks/bench_dpap.py [--quick] [--out benchmarks/results]

Writes ``dpap.json`` and ``dpap.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

from devprune.models import build_model
from devprune.pruning import build_pruner
from devprune.pruning.dpap import DPAPConfig, LayerStatistics
from devprune.pruning.importance import trace_readout

BRAINCOG_CONVS = [  # (in channels, out channels, spatial size)
    (3, 128, 32), (128, 128, 32), (128, 256, 16), (256, 256, 16), (256, 512, 8), (512, 512, 8),
]
BRAINCOG_FC = (32768, 512)
REFERENCE = {"bookkeeping_s": [0.15, 0.43], "epoch_step_s": [0.35, 0.66]}


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# -- 1. per-batch overhead in training ---------------------------------------------------------
def training_overhead(model_name: str, in_shape: tuple[int, ...], batch: int, steps: int,
                      repeats: int, mode: str) -> dict:
    torch.manual_seed(0)
    model = build_model(model_name, in_shape=in_shape, num_classes=10, time_steps=steps)
    x, y = torch.rand(batch, *in_shape), torch.randint(0, 10, (batch,))
    target = torch.nn.functional.one_hot(y, 10).float()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    pruner = build_pruner("dpap", model, x, {"mode": mode})
    pruner.bind_optimizer(opt)

    def step(with_dpap: bool) -> None:
        if with_dpap:
            pruner.on_batch_start()
        loss = (model(x) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        if with_dpap:
            pruner.on_after_backward()
        opt.step()
        if with_dpap:
            pruner.on_after_step()
            pruner.on_batch_end()

    for flag in (False, True):  # warm-up both paths
        step(flag)
    dense, dpap = [], []
    for _ in range(repeats):  # interleaved, so machine load hits both alike
        dense.append(_median_time(lambda: step(False), 1))
        dpap.append(_median_time(lambda: step(True), 1))
    pruner.detach()
    d, p = statistics.median(dense), statistics.median(dpap)
    return {"model": model_name, "mode": mode, "batch": batch, "T": steps,
            "dense_step_s": d, "dpap_step_s": p, "ratio": p / d}


# -- 2. BrainCog CIFAR shapes ------------------------------------------------------------------
def _braincog_activity(batch: int, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(pre, post) multi-step tensors as the hooks see them, with ~15% spike rates."""
    gen = torch.Generator().manual_seed(0)
    pairs = []
    for cin, cout, size in BRAINCOG_CONVS:
        # the input of a stage's first conv is the max-pooled output of the previous stage
        pre = (torch.rand(steps, batch, cin, size, size, generator=gen) < 0.15).float()
        post = (torch.rand(steps, batch, cout, size, size, generator=gen) < 0.15).float()
        pairs.append((pre, post))
    fc_in, fc_out = BRAINCOG_FC
    pairs.append(((torch.rand(steps, batch, fc_in, generator=gen) < 0.15).float(),
                  (torch.rand(steps, batch, fc_out, generator=gen) < 0.15).float()))
    return pairs


def braincog_bookkeeping(batch: int, steps: int, repeats: int) -> dict:
    pairs = _braincog_activity(batch, steps)
    stats = [LayerStatistics(post.shape[2], pre.shape[2], "per_unit", False,
                             torch.device("cpu")) for pre, post in pairs]

    def bookkeeping() -> None:
        for (pre, post), layer in zip(pairs, stats, strict=True):
            layer.update(trace_readout(pre), trace_readout(post))

    bookkeeping()
    seconds = _median_time(bookkeeping, repeats)
    return {"batch": batch, "T": steps, "seconds": seconds,
            "reference_s": REFERENCE["bookkeeping_s"],
            "speedup_vs_reference": [r / seconds for r in REFERENCE["bookkeeping_s"]]}


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
    step = [5]

    def one_step() -> None:
        pruner.prune_step(step[0])
        step[0] += 1

    one_step()
    seconds = _median_time(one_step, repeats)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    weights = sum(p.numel() for p in model.parameters())
    return {"mode": mode, "seconds": seconds, "reference_s": REFERENCE["epoch_step_s"],
            "speedup_vs_reference": [r / seconds for r in REFERENCE["epoch_step_s"]],
            "connectivity_after": pruner.masks.connectivity(),
            "state_mb": state_bytes / 2**20, "mask_mb": mask_bytes / 2**20,
            "model_weights_mb": weights * 4 / 2**20,
            "peak_rss_growth_mb": (rss_after - rss_before) / 1024}


# -- report ------------------------------------------------------------------------------------
def markdown(result: dict) -> str:
    lines = ["# DPAP engine benchmark", "",
             f"CPU, {result['threads']} threads, torch {result['torch']}; ratios are measured "
             "in one process (interleaved), absolute times move with machine load.", "",
             "## Per-batch training overhead (DPAP step / dense step; target <= 1.10)", "",
             "| model | mode | batch | T | dense s | DPAP s | ratio |",
             "|---|---|---|---|---|---|---|"]
    for r in result["training_overhead"]:
        lines.append(f"| {r['model']} | {r['mode']} | {r['batch']} | {r['T']} | "
                     f"{r['dense_step_s']:.4f} | {r['dpap_step_s']:.4f} | {r['ratio']:.3f} |")
    b = result["braincog_bookkeeping"]
    lines += ["", "## BrainCog CIFAR shapes (6 convs + FC 32768x512)", "",
              "| measurement | devprune s | reference s | speed-up |", "|---|---|---|---|",
              f"| per-batch bookkeeping (batch {b['batch']}, T={b['T']}) | {b['seconds']:.3f} | "
              f"0.15-0.43 | {b['speedup_vs_reference'][0]:.1f}-"
              f"{b['speedup_vs_reference'][1]:.1f}x |"]
    for s in result["braincog_epoch_step"]:
        lines.append(f"| epoch-end pruning step ({s['mode']} mode) | {s['seconds']:.3f} | "
                     f"0.35-0.66 | {s['speedup_vs_reference'][0]:.1f}-"
                     f"{s['speedup_vs_reference'][1]:.1f}x |")
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
              "machine": platform.processor() or platform.machine()}
    result["training_overhead"] = [
        training_overhead("snn-mlp", (1, 28, 28), 100, 4, repeats, mode)
        for mode in ("default", "reference")
    ] + [training_overhead("snn-small", (1, 28, 28), 32, 8, max(3, repeats // 3), mode)
         for mode in ("default", "reference")]
    result["braincog_epoch_step"] = [braincog_epoch_step(m, max(3, repeats // 3))
                                     for m in ("default", "reference")]
    result["braincog_bookkeeping"] = braincog_bookkeeping(50, 8, max(3, repeats // 3))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dpap.json").write_text(json.dumps(result, indent=2))
    (out / "dpap.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
