"""The STBP LIF's fused training loop against the recorded per-step loop (devprune.snn.fused).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_fused_lif.py [--steps 12]

Two measurements, both arms interleaved in one process (order alternating), CPU time of the
process, 1 thread, medians:

- one neuron call, forward and backward, on the feature-map shapes of snn-small's two
  convolutional layers and the spiking MLP's hidden layer (T=4, batch 100);
- one training step (forward, MSE on the rates, backward, Adam) of snn-small and of the
  spiking MLP on a real MNIST batch of 100 (the quick presets' data; fetched by
  ``devprune data fetch mnist``).

The recorded arm is ``MembraneNeuron.run_differentiable`` (autograd records every step's
ops); both arms give the same bits (tests/snn/test_fused.py). Writes
benchmarks/results/fused_lif.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from devprune.models import build_model
from devprune.runner.config import load_config
from devprune.runner.data import load_split
from devprune.snn.neurons import STBPLIF, MembraneNeuron

OUT = Path(__file__).resolve().parent / "results"
FUSED = STBPLIF.run_differentiable
NEURON_SHAPES = {"snn-small conv1 maps": (4, 100, 15, 28, 28),
                 "snn-small conv2 maps": (4, 100, 40, 14, 14),
                 "spiking MLP hidden layer": (4, 100, 800)}


def interleaved(work: Callable[[], None], steps: int) -> dict[str, float]:
    """Median CPU seconds of ``work`` with the recorded and with the fused loop."""
    times: dict[str, list[float]] = {"recorded": [], "fused": []}
    for index in range(steps + 2):  # the first two rounds warm up
        for arm in ("recorded", "fused") if index % 2 == 0 else ("fused", "recorded"):
            STBPLIF.run_differentiable = FUSED if arm == "fused" else \
                MembraneNeuron.run_differentiable
            start = time.process_time()
            work()
            if index >= 2:
                times[arm].append(time.process_time() - start)
    STBPLIF.run_differentiable = FUSED
    medians = {arm: statistics.median(values) for arm, values in times.items()}
    return {**medians, "speed_up": medians["recorded"] / medians["fused"]}


def neuron_call(shape: tuple[int, ...], steps: int) -> dict[str, float]:
    neuron = STBPLIF()
    x = (torch.randn(shape) * 0.5 + 0.3).requires_grad_()
    upstream = torch.randn(shape)

    def work() -> None:
        neuron(x).backward(upstream)
        x.grad = None

    return interleaved(work, steps)


def training_step(model_name: str, x: torch.Tensor, target: torch.Tensor,
                  steps: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = build_model(model_name, in_shape=(1, 28, 28), num_classes=10, time_steps=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def work() -> None:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), target).backward()
        optimizer.step()

    return interleaved(work, steps)


def markdown(result: dict[str, Any]) -> str:
    lines = ["# STBP LIF: fused training loop vs the recorded per-step loop", "",
             f"torch {result['torch']}, 1 thread, OMP_WAIT_POLICY={result['omp_wait_policy']}, "
             f"1-min load average {result['load'][0]:.1f}-{result['load'][1]:.1f} (2 cores); "
             f"{result['steps']} interleaved samples per arm, CPU time medians. Both arms give "
             "the same bits.", "",
             "| measured | recorded ms | fused ms | speed-up |", "|---|---|---|---|"]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | {1e3 * row['recorded']:.2f} | {1e3 * row['fused']:.2f} | "
                     f"{row['speed_up']:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="samples per arm")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = [os.getloadavg()[0]]
    data = load_config("mnist-mlp-dpap-quick").data
    x, y = load_split(data, "train", 1000).batch(torch.arange(100), augment=False)
    target = torch.nn.functional.one_hot(y, 10).float()
    rows = {f"neuron call, fwd+bwd, {name} {list(shape)}": neuron_call(shape, args.steps)
            for name, shape in NEURON_SHAPES.items()}
    for model_name in ("snn-small", "snn-mlp"):
        rows[f"training step, {model_name}, MNIST batch 100"] = training_step(
            model_name, x, target, args.steps if model_name == "snn-small" else 5 * args.steps)
    load.append(os.getloadavg()[0])
    result = {"torch": torch.__version__, "steps": args.steps, "load": load,
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fused_lif.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "fused_lif.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
