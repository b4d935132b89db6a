"""The STBP LIF's loops over T: recorded per step, fused in torch, compiled (native).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_fused_lif.py [--steps 12]

Three arms, interleaved in one process (order rotating), CPU time of the process, 1 thread,
medians:

- ``recorded``: ``MembraneNeuron.run_differentiable`` (autograd records every step's ops) in
  training, ``MembraneNeuron.run_inference`` (per-step torch kernels) without grad;
- ``fused``: devprune.snn.fused's autograd Function with its per-step torch kernels;
- ``native``: the same Function and the inference path on the compiled kernel
  (devprune.snn.native; the default where it builds).

Measured: one neuron call, forward and backward, on the feature-map shapes of snn-small's two
convolutional layers and the spiking MLP's hidden layer (T=4, batch 100); one training step
(forward, MSE on the rates, backward, Adam) of snn-small and of the spiking MLP on a real
MNIST batch of 100 (``devprune data fetch mnist``); one eval forward of each at batch 32 and
128. All arms give the same bits (tests/snn/test_fused.py, tests/snn/test_native.py).
Writes benchmarks/results/fused_lif.{json,md}.
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
from devprune.snn import native
from devprune.snn.neurons import LIF, STBPLIF, MembraneNeuron

OUT = Path(__file__).resolve().parent / "results"
FUSED = {cls: cls.run_differentiable for cls in (STBPLIF, LIF)}
NATIVE_SUPPORTS = native.supports
ARMS = ("recorded", "fused", "native")
NEURON_SHAPES = {"snn-small conv1 maps": (4, 100, 15, 28, 28),
                 "snn-small conv2 maps": (4, 100, 40, 14, 14),
                 "spiking MLP hidden layer": (4, 100, 800)}


def use(arm: str) -> None:
    """Switch every STBP and BrainCog LIF to ``arm``'s loops."""
    for cls, fused in FUSED.items():
        cls.run_differentiable = MembraneNeuron.run_differentiable if arm == "recorded" \
            else fused
    native.supports = NATIVE_SUPPORTS if arm == "native" else lambda x: False


def interleaved(work: Callable[[], None], steps: int) -> dict[str, float]:
    """Median CPU seconds of ``work`` under each arm, and the speed-ups over ``recorded``."""
    times: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for index in range(steps + 2):  # the first two rounds warm up
        for arm in ARMS[index % 3:] + ARMS[:index % 3]:
            use(arm)
            start = time.process_time()
            work()
            if index >= 2:
                times[arm].append(time.process_time() - start)
    use("native")
    medians = {arm: statistics.median(values) for arm, values in times.items()}
    return {**medians, "fused_speed_up": medians["recorded"] / medians["fused"],
            "native_speed_up": medians["recorded"] / medians["native"],
            "native_over_fused": medians["fused"] / medians["native"]}


def neuron_call(shape: tuple[int, ...], steps: int,
                neuron_class: type[MembraneNeuron] = STBPLIF) -> dict[str, float]:
    neuron = neuron_class()
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


def eval_forward(model_name: str, x: torch.Tensor, steps: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = build_model(model_name, in_shape=(1, 28, 28), num_classes=10, time_steps=4).eval()

    def work() -> None:
        with torch.no_grad():
            model(x)

    return interleaved(work, steps)


def markdown(result: dict[str, Any]) -> str:
    lines = ["# STBP LIF: recorded, fused (torch) and compiled (native) loops over T", "",
             f"torch {result['torch']}, 1 thread, OMP_WAIT_POLICY={result['omp_wait_policy']}, "
             f"1-min load average {result['load'][0]:.1f}-{result['load'][1]:.1f} (2 cores); "
             f"{result['steps']} interleaved samples per arm, CPU time medians. All arms give "
             "the same bits. Speed-ups over the recorded loop; the last column native over "
             "fused.", "",
             "| measured | recorded ms | fused ms | native ms | fused | native | native / fused |",
             "|---|---|---|---|---|---|---|"]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | {1e3 * row['recorded']:.2f} | {1e3 * row['fused']:.2f} | "
                     f"{1e3 * row['native']:.2f} | {row['fused_speed_up']:.2f}x | "
                     f"{row['native_speed_up']:.2f}x | {row['native_over_fused']:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="samples per arm")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if native.kernels() is None:
        raise SystemExit("the native kernel is not built here (see devprune.snn.native)")
    load = [os.getloadavg()[0]]
    data = load_config("mnist-mlp-dpap-quick").data
    split = load_split(data, "train", 1000)
    x, y = split.batch(torch.arange(100), augment=False)
    target = torch.nn.functional.one_hot(y, 10).float()
    rows = {f"neuron call, fwd+bwd, {name} {list(shape)}": neuron_call(shape, args.steps)
            for name, shape in NEURON_SHAPES.items()}
    shape = NEURON_SHAPES["snn-small conv2 maps"]
    rows[f"BrainCog LIF (QGate) call, fwd+bwd, {list(shape)}"] = neuron_call(shape, args.steps,
                                                                            LIF)
    for model_name in ("snn-small", "snn-mlp"):
        rows[f"training step, {model_name}, MNIST batch 100"] = training_step(
            model_name, x, target, args.steps if model_name == "snn-small" else 5 * args.steps)
    for model_name in ("snn-small", "snn-mlp"):
        for batch in (32, 128):
            images = split.batch(torch.arange(batch), augment=False)[0]
            rows[f"eval forward, {model_name}, batch {batch}"] = eval_forward(
                model_name, images, args.steps if model_name == "snn-small" else 5 * args.steps)
    load.append(os.getloadavg()[0])
    result = {"torch": torch.__version__, "steps": args.steps, "load": load,
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fused_lif.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "fused_lif.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
