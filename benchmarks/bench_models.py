"""Train / inference throughput of every zoo model on this machine's CPU.

For each model: samples/s of a training step (forward, rate-MSE or CE loss, backward,
Adam step) and of inference (eval, no_grad), at the model's paper T and at T=4. Each
measurement repeats whole batches until ``--min-seconds`` have passed (after one warm-up
batch), so big models are measured on a few samples and reported per sample. When
snnTorch is installed, the snn-mlp network is also written with ``snntorch.Leaky`` (same
layers, same T, same direct-encoded input) and timed in the same process. The 1-minute
load average is recorded with every row: the machine is shared, so compare rows of one
run, not absolute numbers across runs.

    .venv/bin/python benchmarks/bench_models.py            # writes results/models.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from devprune.models import build_model, get_loss

RESULTS = Path(__file__).parent / "results"
MNIST, CIFAR = (1, 28, 28), (3, 32, 32)

# (model, input shape, paper T or None for ANNs, batch size)
MODELS: list[tuple[str, tuple[int, ...], int | None, int]] = [
    ("snn-mlp", MNIST, 4, 100),
    ("snn-small", MNIST, 20, 50),
    ("snn-sew-resnet", CIFAR, 4, 16),
    ("snn-braincog-cifar", CIFAR, 8, 8),
    ("ann-mlp", MNIST, None, 100),
    ("ann-lenet-mnist", MNIST, None, 100),
    ("ann-resnet20", CIFAR, None, 32),
    ("ann-resnet56", CIFAR, None, 16),
    ("ann-vgg16-dpap", CIFAR, None, 8),
]


def repeat_for(
    step: Callable[[], None], batch: int, min_seconds: float, max_batches: int
) -> tuple[float, float, int]:
    """(samples per wall second, samples per CPU second, samples timed) after one warm-up.

    CPU seconds (``time.process_time``, summed over this process's threads) are much less
    sensitive than wall time to other processes sharing the cores: with one thread,
    samples per CPU second approximates the throughput on an idle core.
    """
    step()
    batches, started, cpu_started = 0, time.perf_counter(), time.process_time()
    while batches < max_batches and (batches == 0 or time.perf_counter() - started < min_seconds):
        step()
        batches += 1
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return batch * batches / wall, batch * batches / cpu, batches * batch


def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, args) -> dict:
    loss_fn = get_loss("rate_mse" if getattr(model, "is_spiking", False) else "cross_entropy")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step() -> None:
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer_step() -> None:
        with torch.no_grad():
            model(x)

    model.train()
    load_before = os.getloadavg()[0]
    train_sps, train_cpu, train_n = repeat_for(train_step, len(x), args.min_seconds,
                                               args.max_batches)
    model.eval()
    infer_sps, infer_cpu, infer_n = repeat_for(infer_step, len(x), args.min_seconds,
                                               args.max_batches)
    return {
        "train_samples_per_s": round(train_sps, 2), "train_samples_timed": train_n,
        "infer_samples_per_s": round(infer_sps, 2), "infer_samples_timed": infer_n,
        "train_samples_per_cpu_s": round(train_cpu, 2),
        "infer_samples_per_cpu_s": round(infer_cpu, 2),
        "epoch60k_train_s": round(60000 / train_sps, 1),
        "epoch60k_train_cpu_s": round(60000 / train_cpu, 1),
        "load_avg_1m": round((load_before + os.getloadavg()[0]) / 2, 2),
    }


class SnnTorchMLP(nn.Module):
    """snn-mlp written the snnTorch way: per-step layers, state passed explicitly."""

    def __init__(self, snn, sizes: tuple[int, int, int], time_steps: int) -> None:
        super().__init__()
        self.time_steps = time_steps
        self.fc1, self.fc2 = nn.Linear(sizes[0], sizes[1]), nn.Linear(sizes[1], sizes[2])
        grad = snn.surrogate.fast_sigmoid()
        self.lif1 = snn.Leaky(beta=0.2, threshold=0.5, spike_grad=grad, reset_mechanism="zero")
        self.lif2 = snn.Leaky(beta=0.2, threshold=0.5, spike_grad=grad, reset_mechanism="zero")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spikes = []
        for _ in range(self.time_steps):  # direct encoding: the same input every step
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spikes.append(spk2)
        return torch.stack(spikes).mean(0)


def snntorch_rows(args) -> list[dict]:
    try:
        import snntorch as snn
    except ImportError:
        return []
    rows = []
    for steps in sorted({4, 8}):
        x, y = torch.rand(100, *MNIST), torch.randint(0, 10, (100,))
        for label, model in (
            ("devprune snn-mlp", build_model("snn-mlp", in_shape=MNIST, num_classes=10,
                                             time_steps=steps)),
            (f"snntorch {snn.__version__} Leaky", SnnTorchMLP(snn, (784, 800, 10), steps)),
        ):
            torch.manual_seed(0)
            row = {"impl": label, "time_steps": steps, "batch": 100, **measure(model, x, y, args)}
            rows.append(row)
            print(row, flush=True)
    return rows


def zoo_rows(args) -> list[dict]:
    rows = []
    for name, shape, paper_t, batch in MODELS:
        if args.only and name not in args.only:
            continue
        steps_list = [None] if paper_t is None else sorted({paper_t, 4})
        for steps in steps_list:
            torch.manual_seed(0)
            model = build_model(name, in_shape=shape, num_classes=10, time_steps=steps)
            x, y = torch.rand(batch, *shape), torch.randint(0, 10, (batch,))
            row = {"model": name, "in_shape": list(shape), "time_steps": steps, "batch": batch,
                   "params": sum(p.numel() for p in model.parameters()),
                   **measure(model, x, y, args)}
            rows.append(row)
            print(row, flush=True)
    return rows


def markdown(result: dict) -> str:
    lines = [
        f"# Zoo throughput (CPU, {result['threads']} threads, torch {result['torch']})", "",
        "Shared machine: compare rows of one run; `load` is the 1-minute load average "
        f"during the row (cores: {result['cpus']}).", "",
        "Wall-clock rates suffer from the other processes; the per-CPU-second columns "
        "(process CPU time, all threads summed) approximate an idle machine per core.", "",
        "| model | T | batch | params | train samples/s (wall) | infer samples/s (wall) | "
        "train samples/CPU-s | infer samples/CPU-s | 60k train epoch, CPU-s | load |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["zoo"]:
        lines.append(
            f"| {r['model']} | {r['time_steps'] or '-'} | {r['batch']} | {r['params']:,} | "
            f"{r['train_samples_per_s']:.1f} | {r['infer_samples_per_s']:.1f} | "
            f"{r['train_samples_per_cpu_s']:.1f} | {r['infer_samples_per_cpu_s']:.1f} | "
            f"{r['epoch60k_train_cpu_s']} | {r['load_avg_1m']} |"
        )
    if result["snntorch"]:
        lines += ["", "## Same MLP SNN, devprune multi-step vs snnTorch (same process)", "",
                  "| implementation | T | train samples/s (wall) | train samples/CPU-s | "
                  "infer samples/CPU-s | load |",
                  "|---|---|---|---|---|---|"]
        for r in result["snntorch"]:
            lines.append(f"| {r['impl']} | {r['time_steps']} | {r['train_samples_per_s']:.0f} |"
                         f" {r['train_samples_per_cpu_s']:.0f} | "
                         f"{r['infer_samples_per_cpu_s']:.0f} | {r['load_avg_1m']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--max-batches", type=int, default=50)
    parser.add_argument("--only", nargs="*", default=None, help="model names to run")
    parser.add_argument("--skip-snntorch", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "models",
                        help="output path without extension; .json and .md are appended")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {
        "torch": torch.__version__, "threads": args.threads, "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "snntorch": [] if args.skip_snntorch else snntorch_rows(args),
        "zoo": zoo_rows(args),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # appended, not with_suffix: "models.snn-mlp" must become "models.snn-mlp.json"
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=1))
    Path(f"{args.out}.md").write_text(markdown(result))


if __name__ == "__main__":
    main()
