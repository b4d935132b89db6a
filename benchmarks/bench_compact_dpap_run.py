"""Masked vs compacted inference on the structures real DPAP runs produced (issue #17).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_compact_dpap_run.py  # ~5-10 min
    .venv/bin/python benchmarks/bench_compact_dpap_run.py --quick    # a smoke run
    .venv/bin/python benchmarks/bench_compact_dpap_run.py --runs RUN [RUN ...] \
        [--heavier-keep 0.4] [--batches 1 32 128] [--threads 1 2] [--runtime eager]
    # both models without Python per call (TorchScript trace + freeze; or --runtime compile):
    .venv/bin/python benchmarks/bench_compact_dpap_run.py --runtime torchscript \
        --out compact_dpap_run.torchscript
    # the state before issue #17's work, for comparison (both models run the neuron loop
    # built for training, with its surrogate calls):
    .venv/bin/python benchmarks/bench_compact_dpap_run.py --training-neuron-loop \
        --out compact_dpap_run.training_loop

Cases: the last checkpoint of each run (default: the main job's recipe, `mnist-mlp-dpap-quick`
seed 0 of the MNIST frontier grid, and DPAP on snn-small from the snn-small comparison), and a
more heavily pruned version of the first run: of its alive hidden units only the
``--heavier-keep`` share with the largest L1 norm of kept weights stays (the output layer is
never pruned). Each case is compacted twice: tight (only the units that carry signal) and in
the inference layout (``unit_multiple=16``: widths rounded up with zero units where that
adds at most 1/8 of the width, devprune.compact.plan.padded_width). The three
models run in the chosen runtime (eager, torch.compile or TorchScript, the same for all) and
are checked to give the eager masked model's outputs bit for bit (same Bernoulli draws);
then they are timed in one process, alternating forwards, for every batch size and thread
count, and the whole sweep is repeated (``--rounds``); a speed-up is the median over the
rounds of the ratio of median times (masked / compacted), its range the rounds' extremes.
"ideal" is the ratio of dense weight-layer MACs, masked / *tight* compacted (zeros
included, the count of bench_compact.py), for both speed-ups: the padding units' MACs are
not credited. "neuron
ratio" is the ratio of neuron state updates (elements entering spiking neurons), a
per-neuron cost that shrinks with the units, not with the MACs.
The load average (1 min) is recorded around every measurement: the machine is shared. On
an oversubscribed machine run it with ``OMP_WAIT_POLICY=PASSIVE``: with OpenMP's default
spin-then-sleep waits a two-thread forward of 2 ms took 8-130 ms whenever the other core was
busy (the timings then measure the scheduler, not the model). Both models run with the
memory a forward frees kept in the process (``devprune.utils.heap.reuse_freed_memory``), as
a deployment loop would; ``--malloc-defaults`` keeps glibc's defaults, under which every
forward may page-fault its large blocks anew (snn-small at batch 128: 11,000-14,000 faults
in most fresh processes, up to a third of the forward, mostly in the layers both models
share).
Writes benchmarks/results/compact_dpap_run.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench_compact import count_macs
from devprune.compact import compact
from devprune.masks import MaskSet
from devprune.runner.runmodel import load_run
from devprune.snn.base import is_spiking_neuron
from devprune.snn.neurons import MembraneNeuron
from devprune.utils.heap import reuse_freed_memory

OUT = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUNS = [
    ROOT / "runs/frontier-mnist-mlp/dpap/seed-0",  # the main job's preset, seed 0
    ROOT / "runs/compare-mnist-snn-small/dpap/seed-0",
]
# each timed sample loops one model's forward about this long, the same for every model so
# that preemption by other processes hits their samples alike; short enough that some escape
SAMPLE_SECONDS = 0.005
UNIT_MULTIPLE = 16  # the inference layout: 16 float32 = one AVX-512 register
# how both models of a comparison run: eager PyTorch (the library as it is), torch.compile
# (inductor, CPU) or TorchScript trace + freeze (deprecated in torch 2.13; no Python per op)
RUNTIMES = ("eager", "compile", "torchscript")
FREED_MEMORY = {True: "kept in the process (devprune.utils.heap.reuse_freed_memory)",
                False: "glibc's defaults (large blocks may be unmapped and page-faulted "
                       "anew)"}


def neuron_updates(model: nn.Module, x: torch.Tensor) -> int:
    """Elements entering spiking neurons in one forward (membrane updates, T included)."""
    total = 0

    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: Any) -> None:
        nonlocal total
        total += inputs[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if is_spiking_neuron(m)]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return total


def prune_weakest_units(masks: MaskSet, keep: float) -> None:
    """Keep only the ``keep`` share of each pruned hidden layer's alive units, those with the
    largest L1 norm of kept weights: a more heavily pruned version of the same network."""
    for name in masks.names():
        alive = masks.unit_alive(name)
        if bool(alive.all()):
            continue  # a layer the method did not prune stays as it is
        weight = masks.structure[name].module.weight.detach()
        strength = (weight * masks[name]).abs().flatten(1).sum(1).masked_fill(~alive, -1.0)
        survivors = max(1, round(keep * int(alive.sum())))
        masks.prune_units(name, strength.argsort(descending=True)[survivors:])
    masks.apply()


def load_case(run: Path, heavier_keep: float | None) -> tuple[list[nn.Module], torch.Tensor]:
    """The run's last checkpoint hard-masked, its tight compacted copy and its copy in the
    inference layout; and an example batch."""
    masked, masks, example = load_run(run, "last")[:3]
    masks.apply()
    if heavier_keep is not None:
        prune_weakest_units(masks, heavier_keep)
    tight = compact(masked, masks, example)
    padded = compact(masked, masks, example, unit_multiple=UNIT_MULTIPLE)
    return [m.eval() for m in (masked, tight, padded)], example


def seeded_forward(model: nn.Module, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)  # the same Bernoulli draws for both models
        return model(x)


def loops_per_sample(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        model(x)
        once = time.perf_counter() - start
    return max(1, round(SAMPLE_SECONDS / max(once, 1e-6)))


def time_alternating(models: list[nn.Module], x: torch.Tensor,
                     repeats: int) -> tuple[list[float], list[float]]:
    """Median wall seconds and median CPU seconds (of this process, all its threads) per
    forward of each model, one sample per repeat, samples alternating (order reversed every
    repeat) so that load changes hit all alike."""
    loops = [loops_per_sample(model, x) for model in models]
    samples: list[list[float]] = [[] for _ in models]
    cpu_samples: list[list[float]] = [[] for _ in models]
    forwards = list(range(len(models)))
    with torch.no_grad():
        for repeat in range(repeats):
            for i in forwards if repeat % 2 == 0 else forwards[::-1]:
                start, start_cpu = time.perf_counter(), time.process_time()
                for _ in range(loops[i]):
                    models[i](x)
                samples[i].append((time.perf_counter() - start) / loops[i])
                cpu_samples[i].append((time.process_time() - start_cpu) / loops[i])
    return ([statistics.median(times) for times in samples],
            [statistics.median(times) for times in cpu_samples])


def in_runtime(models: list[nn.Module], x: torch.Tensor, runtime: str) -> list[nn.Module]:
    """The models as ``runtime`` runs them on batches shaped like ``x``."""
    if runtime == "eager":
        return models
    if runtime == "compile":
        return [torch.compile(m) for m in models]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice of torch.jit
        return [torch.jit.freeze(torch.jit.trace(m, x, check_trace=False)) for m in models]


def prepare_case(name: str, eager_models: list[nn.Module], example: torch.Tensor,
                 args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per batch size: the input, the three models in the runtime, and what is fixed about
    them (bit-equal outputs, MAC ideal, neuron-update ratio)."""
    masked, tight = eager_models[:2]  # the reference outputs and MAC counts stay eager
    prepared = []
    for batch in args.batches:
        x = torch.rand(batch, *example.shape[1:], generator=torch.Generator().manual_seed(batch))
        models = in_runtime(eager_models, x, args.runtime)
        expected = seeded_forward(masked, x)
        prepared.append({
            "model": name, "batch": batch, "x": x, "models": models,
            "outputs_equal": all(torch.equal(seeded_forward(m, x), expected) for m in models),
            "ideal": count_macs(masked, x) / count_macs(tight, x),
            "neuron_ratio": neuron_updates(masked, x) / neuron_updates(tight, x)})
    return prepared


def measure_round(prepared: list[dict[str, Any]], args: argparse.Namespace) -> list[dict]:
    """One timing of every (case, batch, threads): median times and load."""
    rows = []
    for item in prepared:
        for threads in args.threads:
            torch.set_num_threads(threads)
            load_before = os.getloadavg()[0]
            wall, cpu = time_alternating(item["models"], item["x"], args.repeats)
            rows.append({"model": item["model"], "batch": item["batch"], "threads": threads,
                         "masked_s": wall[0], "tight_s": wall[1], "compact_s": wall[2],
                         "masked_cpu_s": cpu[0], "tight_cpu_s": cpu[1], "compact_cpu_s": cpu[2],
                         "load": [load_before, os.getloadavg()[0]]})
    return rows


def summarise(prepared: list[dict[str, Any]], rounds: list[list[dict]]) -> list[dict]:
    """Per (case, batch, threads): medians over the rounds, and the range of the speed-up."""
    rows = []
    for index, timed in enumerate(zip(*rounds, strict=True)):
        item = next(p for p in prepared if (p["model"], p["batch"]) ==
                    (timed[0]["model"], timed[0]["batch"]))
        speedups = [r["masked_s"] / r["compact_s"] for r in timed]
        speedup = statistics.median(speedups)
        cpu_speedups = [r["masked_cpu_s"] / r["compact_cpu_s"] for r in timed]
        rows.append({
            "model": item["model"], "runtime": None, "batch": item["batch"],
            "threads": timed[0]["threads"],
            "masked_ms": 1e3 * statistics.median(r["masked_s"] for r in timed),
            "compact_ms": 1e3 * statistics.median(r["compact_s"] for r in timed),
            "speedup": speedup, "speedup_range": [min(speedups), max(speedups)],
            "tight_speedup": statistics.median(r["masked_s"] / r["tight_s"] for r in timed),
            "ideal": item["ideal"], "of_ideal": speedup / item["ideal"],
            "of_ideal_range": [min(speedups) / item["ideal"], max(speedups) / item["ideal"]],
            "cpu_speedup": statistics.median(cpu_speedups),
            "cpu_of_ideal": statistics.median(cpu_speedups) / item["ideal"],
            "cpu_of_ideal_range": [min(cpu_speedups) / item["ideal"],
                                   max(cpu_speedups) / item["ideal"]],
            "neuron_ratio": item["neuron_ratio"], "outputs_equal": item["outputs_equal"],
            "load": [min(r["load"][0] for r in timed), max(r["load"][1] for r in timed)],
            "row": index})
    return rows


def cases(args: argparse.Namespace) -> list[tuple[str, float | None, Path]]:
    found = [(f"{run.parent.parent.name}/{run.parent.name}/{run.name}", None, run)
             for run in args.runs]
    if args.heavier_keep is not None:
        label, _, run = found[0]
        found.insert(1, (f"{label} (alive units x{args.heavier_keep:g})", args.heavier_keep,
                         run))
    return found


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Masked vs compacted inference on DPAP-pruned runs", "",
        f"Command: `{result['command']}`; torch {result['torch']}; runtime of both models: "
        f"{result['runtime']}; neuron loop in eval: {result['neuron_loop']}; "
        f"OMP_WAIT_POLICY={result['omp_wait_policy']}; freed memory: "
        f"{FREED_MEMORY[result.get('freed_memory_reused', False)]}. Each round times every row "
        f"interleaved ({result['repeats']} samples per model, medians); the whole sweep ran "
        f"{result['rounds']} times: speed-up = median over the rounds, range = the rounds' "
        "lowest and highest. compact = the inference layout (widths rounded up "
        f"to {UNIT_MULTIPLE} with zero units where that adds at most 1/8), tight = only the "
        "units carrying signal; ideal = "
        "MACs masked / MACs tight; of ideal = speed-up (layout) / ideal; neuron = neuron state "
        "updates masked / tight; outputs equal: bit for bit, every model in its runtime against "
        "the eager masked one; load = 1-min load average, lowest-highest (2 cores). CPU = the "
        "same ratios of the process's CPU time (all its threads) over the same samples: with 1 "
        "thread the forward's work without the time other processes took (it moves less with "
        "the load than wall time); with 2 threads it includes the time a thread spends "
        "waiting for the other (measured: a 2-thread [128,784]x[784,112] GEMM took 4.5-5x "
        "the 1-thread one in wall and in CPU time alike on the loaded machine).", "",
    ]
    for case in result["cases"]:
        lines.append(f"- `{case['model']}`: parameters {case['params'][0]:,} -> "
                     f"{case['params'][1]:,}, units {case['units']}")
    header = ["model", "batch", "threads", "masked ms", "compact ms", "speed-up",
              "speed-up range", "tight speed-up", "ideal (MACs)", "of ideal", "of ideal range",
              "CPU of ideal", "CPU of ideal range", "neuron ratio", "outputs equal", "load"]
    lines += ["", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += [
        f"| {r['model']} | {r['batch']} | {r['threads']} | {r['masked_ms']:.3f} | "
        f"{r['compact_ms']:.3f} | {r['speedup']:.2f}x | {r['speedup_range'][0]:.2f}-"
        f"{r['speedup_range'][1]:.2f}x | {r['tight_speedup']:.2f}x | {r['ideal']:.2f}x | "
        f"**{r['of_ideal']:.2f}** | {r['of_ideal_range'][0]:.2f}-{r['of_ideal_range'][1]:.2f} | "
        f"{cpu_cells(r)} | {r['neuron_ratio']:.2f}x | {r['outputs_equal']} | "
        f"{r['load'][0]:.1f}-{r['load'][1]:.1f} |"
        for r in result["rows"]
    ]
    return "\n".join(lines) + "\n"


def cpu_cells(row: dict[str, Any]) -> str:
    """The CPU-time cells of a row (``-`` in results written before they were measured)."""
    if "cpu_of_ideal" not in row:
        return "- | -"
    low, high = row["cpu_of_ideal_range"]
    return f"{row['cpu_of_ideal']:.2f} | {low:.2f}-{high:.2f}"


def unit_counts(models: list[nn.Module]) -> str:
    """``masked->tight(layout)`` widths of every weight layer."""
    def widths(model: nn.Module) -> list[int]:
        return [m.weight.shape[0] for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]

    return " ".join(f"{a}->{b}({c})" for a, b, c in zip(*map(widths, models), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="+", default=DEFAULT_RUNS)
    parser.add_argument("--heavier-keep", type=float, default=0.4)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 128])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=15, help="samples per model and round")
    parser.add_argument("--rounds", type=int, default=5, help="times the whole sweep runs")
    parser.add_argument("--quick", action="store_true",
                        help="batch 32, 1 thread, 5 repeats, 2 rounds")
    parser.add_argument("--out", default="compact_dpap_run")
    parser.add_argument("--runtime", choices=RUNTIMES, default="eager",
                        help="how both models run (default: eager PyTorch)")
    parser.add_argument("--markdown-from", type=Path,
                        help="rewrite the Markdown of an earlier JSON result and stop")
    parser.add_argument("--training-neuron-loop", action="store_true",
                        help="run neurons with the differentiable loop in eval too (the "
                        "state before the inference loop), to measure what it changed")
    parser.add_argument("--malloc-defaults", action="store_true",
                        help="leave glibc's malloc as it is (default: both models reuse "
                        "freed memory, as a deployment loop would; docs/COMPACT.md#freed-memory)")
    args = parser.parse_args()
    if args.markdown_from is not None:
        args.markdown_from.with_suffix(".md").write_text(
            markdown(json.loads(args.markdown_from.read_text())))
        return
    if args.training_neuron_loop:
        MembraneNeuron.run_inference = MembraneNeuron.run_differentiable
    if args.quick:
        args.batches, args.threads, args.repeats, args.rounds = [32], [1], 5, 2
    freed_memory_reused = not args.malloc_defaults and reuse_freed_memory()
    result: dict[str, Any] = {
        "command": "python benchmarks/bench_compact_dpap_run.py " + " ".join(
            sys.argv[1:]), "torch": torch.__version__, "repeats": args.repeats,
        "rounds": args.rounds,
        "neuron_loop": "training" if args.training_neuron_loop else "inference",
        "runtime": args.runtime,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
        "freed_memory_reused": freed_memory_reused, "cases": [], "rows": []}
    prepared = []
    for label, heavier_keep, run in cases(args):
        models, example = load_case(run, heavier_keep)
        result["cases"].append({
            "model": label, "run": str(run), "units": unit_counts(models),
            "params": [sum(p.numel() for p in m.parameters()) for m in models[:2]]})
        prepared += prepare_case(label, models, example, args)
    rounds = []
    for number in range(args.rounds):  # the whole sweep again: slow load drifts hit all
        rounds.append(measure_round(prepared, args))
        print(f"round {number + 1}/{args.rounds} done", flush=True)
    result["rows"] = summarise(prepared, rounds)
    for row in result["rows"]:
        row["runtime"] = args.runtime
    result["round_rows"] = rounds
    OUT.mkdir(exist_ok=True)
    (OUT / f"{args.out}.json").write_text(json.dumps(result, indent=2))
    (OUT / f"{args.out}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
