"""Masked vs compacted inference on the CPU, the CSR break-even, and export status.

For zoo networks at synthetic unit densities (every prunable layer keeps that share of its
units, picked at random; synapses of kept units untouched) it times the hard-masked model
and the compacted one in the same process, interleaved, and sets the measured speed-up
beside the ideal one (MACs masked-dense / MACs compacted, counted with forward hooks).
A second part times dense ``F.linear`` against ``torch.sparse.mm`` on CSR weights across
sparsities to find the break-even; a third tries TorchScript and ``torch.export`` on the
compacted models. Writes benchmarks/results/compact.json and compact.md.

    .venv/bin/python benchmarks/bench_compact.py            # full run (~15-30 min shared)
    .venv/bin/python benchmarks/bench_compact.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from devprune.compact import CSRLinear, compact, masked_copy
from devprune.masks import MaskSet
from devprune.models import build_model
from devprune.snn.layers import repeated_over_time
from devprune.structure import WEIGHT_LAYERS, discover

RESULTS = Path(__file__).parent / "results"
NETWORKS = {  # name: (in_shape, build kwargs)
    "snn-mlp": ((1, 28, 28), {"time_steps": 4}),
    "snn-small": ((1, 28, 28), {"time_steps": 4}),
    "snn-sew-resnet": ((3, 32, 32), {"time_steps": 2}),
    "ann-lenet-mnist": ((1, 28, 28), {}),
    "ann-resnet20": ((3, 32, 32), {}),
}
DENSITIES = (0.75, 0.5, 0.25, 0.1)


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass over the batch (dense, zeros included), as
    computed: a multi-step layer fed a time-repeated input computes one step and broadcasts
    it (devprune.snn.layers.repeated_over_time), so its output counts one step."""
    total = 0

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        per_output = module.weight[0].numel()  # fan-in (x kernel) of one output element
        computed = output[0] if repeated_over_time(output) else output
        total += computed.numel() * per_output

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, WEIGHT_LAYERS)]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return total


def time_pair(a: nn.Module, b: nn.Module, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Median seconds per forward of ``a`` and ``b``, measured alternately (shared load)."""
    times: dict[int, list[float]] = {0: [], 1: []}
    with torch.no_grad():
        for model in (a, b):
            model(x)  # warm-up
        for _ in range(repeats):
            for i, model in enumerate((a, b)):
                start = time.perf_counter()
                model(x)
                times[i].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def unit_masks(model: nn.Module, x: torch.Tensor, density: float, seed: int) -> MaskSet:
    generator = torch.Generator().manual_seed(seed)
    masks = MaskSet(discover(model, x))
    for name in masks.names():
        units = masks.structure[name].num_units
        keep = max(1, round(units * density))
        dead = torch.randperm(units, generator=generator)[keep:]
        masks.prune_units(name, dead)
    return masks


def bench_network(name: str, batches: list[int], repeats: int) -> list[dict[str, Any]]:
    in_shape, kwargs = NETWORKS[name]
    torch.manual_seed(0)
    model = build_model(name, in_shape=in_shape, num_classes=10, **kwargs).eval()
    rows = []
    for density in DENSITIES:
        probe = torch.rand(2, *in_shape)
        masks = unit_masks(model, probe, density, seed=1)
        masked, small = masked_copy(model, masks), compact(model, masks, probe)
        for batch in batches:
            x = torch.rand(batch, *in_shape)
            ideal = count_macs(masked, x) / count_macs(small, x)
            t_masked, t_small = time_pair(masked, small, x, repeats)
            rows.append({
                "network": name, "density": density, "batch": batch,
                "masked_ms": 1e3 * t_masked, "compact_ms": 1e3 * t_small,
                "masked_samples_per_s": batch / t_masked,
                "compact_samples_per_s": batch / t_small,
                "speedup": t_masked / t_small, "ideal": ideal,
                "of_ideal": (t_masked / t_small) / ideal,
            })
            print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_csr(repeats: int) -> list[dict[str, Any]]:
    rows = []
    for out_f, in_f in ((800, 784), (300, 640)):
        for batch in (32, 128, 640):  # 640 = an SNN's T*B = 20 x 32 rows
            x = torch.randn(batch, in_f)
            for sparsity in (0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98):
                dense = nn.Linear(in_f, out_f)
                with torch.no_grad():
                    dense.weight[torch.rand(out_f, in_f) < sparsity] = 0
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "CSR support is in beta"
                    csr = CSRLinear(dense)
                t_dense, t_csr = time_pair(dense, csr, x, repeats)
                rows.append({"shape": [out_f, in_f], "batch": batch, "sparsity": sparsity,
                             "dense_us": 1e6 * t_dense, "csr_us": 1e6 * t_csr,
                             "csr_speedup": t_dense / t_csr})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def _try(fn: Any) -> str:
    try:
        fn()
    except Exception as err:  # the status line records any failure
        first = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), "")
        return f"fails: {type(err).__name__}: {first[:160]}"
    return "ok"


def export_status() -> list[dict[str, Any]]:
    rows = []
    for name, (in_shape, kwargs) in NETWORKS.items():
        torch.manual_seed(0)
        model = build_model(name, in_shape=in_shape, num_classes=10, **kwargs).eval()
        x = torch.rand(2, *in_shape)
        small = compact(model, unit_masks(model, x, 0.5, seed=1), x)
        del small.compaction_plan  # plain module for the exporters

        def traced_equal(small: nn.Module = small, x: torch.Tensor = x) -> None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                traced = torch.jit.trace(small, x, check_trace=False)
                torch.manual_seed(0)
                got = traced(x)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                expected = small(x)
            if not torch.allclose(got, expected):
                raise AssertionError("traced outputs differ")

        rows.append({
            "network": name,
            "jit.trace": _try(traced_equal),
            "jit.script": _try(lambda small=small: torch.jit.script(small)),
            "torch.export": _try(lambda small=small, x=x: torch.export.export(small, (x,))),
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def fixed_cost_fit(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per network and batch, least squares ``t_compact = a + b * MACs/MACs_dense``: ``a`` is
    the time compaction cannot remove (encoder, per-step neuron loops, pooling, Python)."""
    fits = []
    for key in sorted({(r["network"], r["batch"]) for r in rows}):
        pts = [(1.0 / r["ideal"], r["compact_ms"]) for r in rows
               if (r["network"], r["batch"]) == key]
        pts.append((1.0, statistics.median(r["masked_ms"] for r in rows
                                           if (r["network"], r["batch"]) == key)))
        if len(pts) < 3:
            continue
        slope, intercept = statistics.linear_regression(*zip(*pts, strict=True))
        fits.append({"network": key[0], "batch": key[1], "fixed_ms": intercept,
                     "mac_ms": slope, "fixed_share": intercept / (intercept + slope)})
    return fits


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Compaction benchmark ({result['meta']['when']}, {result['meta']['threads']} "
             "thread(s), shared machine)", "",
             "| network | unit density | batch | masked ms | compact ms | speed-up | ideal "
             "(MACs) | of ideal |", "|---|---|---|---|---|---|---|---|"]
    for r in result["latency"]:
        lines.append(f"| {r['network']} | {r['density']:.0%} | {r['batch']} | "
                     f"{r['masked_ms']:.2f} | {r['compact_ms']:.2f} | {r['speedup']:.2f}x | "
                     f"{r['ideal']:.2f}x | {r['of_ideal']:.2f} |")
    lines += ["", "## Time compaction cannot remove", "",
              "Fit `compact ms = fixed + mac_ms * (MACs / dense MACs)` over the densities:",
              "", "| network | batch | fixed ms | MAC-proportional ms | fixed share of dense |",
              "|---|---|---|---|---|"]
    for f in fixed_cost_fit(result["latency"]):
        lines.append(f"| {f['network']} | {f['batch']} | {f['fixed_ms']:.1f} | "
                     f"{f['mac_ms']:.1f} | {f['fixed_share']:.0%} |")
    lines += ["", "## CSR vs dense linear", "",
              "| shape | batch | sparsity | dense us | CSR us | CSR speed-up |",
              "|---|---|---|---|---|---|"]
    for r in result["csr"]:
        lines.append(f"| {r['shape'][0]}x{r['shape'][1]} | {r['batch']} | {r['sparsity']:.0%} "
                     f"| {r['dense_us']:.0f} | {r['csr_us']:.0f} | {r['csr_speedup']:.2f}x |")
    lines += ["", "## Export of compacted models", "",
              "| network | jit.trace | jit.script | torch.export |", "|---|---|---|---|"]
    for r in result["export"]:
        lines.append(f"| {r['network']} | {r['jit.trace']} | {r['jit.script']} | "
                     f"{r['torch.export']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repeats, one batch size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--networks", nargs="*", default=list(NETWORKS))
    parser.add_argument("--markdown-from", type=Path, default=None,
                        help="only rewrite the Markdown table from an earlier JSON result")
    args = parser.parse_args()
    if args.markdown_from is not None:
        result = json.loads(args.markdown_from.read_text())
        args.markdown_from.with_suffix(".md").write_text(markdown(result))
        return
    torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 9
    batches = [32] if args.quick else [32, 128]
    result: dict[str, Any] = {"meta": {
        "when": time.strftime("%Y-%m-%d %H:%M"), "threads": args.threads,
        "torch": torch.__version__, "repeats": repeats,
        "note": "medians of alternated runs on a CPU shared with other jobs"}}
    result["latency"] = [row for n in args.networks for row in bench_network(n, batches, repeats)]
    result["csr"] = bench_csr(repeats)
    result["export"] = export_status()
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    (RESULTS / f"compact{suffix}.json").write_text(json.dumps(result, indent=1))
    (RESULTS / f"compact{suffix}.md").write_text(markdown(result))


if __name__ == "__main__":
    main()
