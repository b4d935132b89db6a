"""A time-repeated input computed once: training step and inference, as ratios in one process.

Directly encoded SNNs see the same image at every time step (``DirectEncoder``: a broadcast
view, stride 0 along T). devprune's multi-step layers then compute one step and broadcast it
(docs/ARCHITECTURE.md#tensor-layout). This benchmark times the same model, weights and batch
two ways, interleaved in rotating order: ``once`` (the library as it is) and ``per step``
(the encoder's output materialised with ``.contiguous()``, so every layer folds all T steps:
the work a framework without the shortcut does). Per model it reports the medians of the
training step (forward, loss, backward, Adam step) and of inference (eval, no_grad), in wall
and in process CPU time, and the largest difference of the outputs (float rounding only).

    .venv/bin/python benchmarks/bench_repeated_input.py [--threads 1] [--repeats 15]

Writes benchmarks/results/repeated_input.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from devprune.models import build_model, get_loss
from devprune.snn.encoders import DirectEncoder

RESULTS = Path(__file__).parent / "results"
MNIST, CIFAR = (1, 28, 28), (3, 32, 32)
# (model, input shape, T, batch): the zoo's directly encoded SNNs at their paper T
MODELS = [("snn-mlp", MNIST, 4, 100), ("snn-braincog-cifar", CIFAR, 8, 8),
          ("snn-sew-resnet", CIFAR, 4, 16)]


def materialise(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
    """Encoder forward hook: copy the broadcast view out, so every later layer folds T."""
    return output.contiguous()


def variants(name: str, shape: tuple[int, ...], steps: int) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    once = build_model(name, in_shape=shape, num_classes=10, time_steps=steps)
    if not isinstance(once.encoder, DirectEncoder):
        raise SystemExit(f"{name}: not directly encoded ({type(once.encoder).__name__})")
    per_step = copy.deepcopy(once)
    per_step.encoder.register_forward_hook(materialise)
    return {"once": once, "per step": per_step}


def timed(fn) -> tuple[float, float]:
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - start_cpu


def bench_model(name: str, shape: tuple[int, ...], steps: int, batch: int,
                repeats: int) -> dict[str, Any]:
    models = variants(name, shape, steps)
    x, y = torch.rand(batch, *shape), torch.randint(0, 10, (batch,))
    loss_fn = get_loss("mse" if name == "snn-mlp" else "ce")
    optims = {k: torch.optim.Adam(m.parameters(), lr=1e-4) for k, m in models.items()}

    def train_step(key: str) -> None:
        model = models[key].train()
        loss = loss_fn(model(x), y)
        optims[key].zero_grad()
        loss.backward()
        optims[key].step()

    def infer(key: str) -> None:
        with torch.no_grad():
            models[key].eval()(x)

    with torch.no_grad():
        outs = [m.eval()(x) for m in models.values()]
    max_diff = float((outs[0] - outs[1]).abs().max())
    result: dict[str, Any] = {"model": name, "T": steps, "batch": batch,
                              "max_output_difference": max_diff}
    keys = list(models)
    for label, fn in (("train", train_step), ("inference", infer)):
        for key in keys:  # warm-up
            fn(key)
        wall: dict[str, list[float]] = {k: [] for k in keys}
        cpu: dict[str, list[float]] = {k: [] for k in keys}
        for i in range(repeats):
            for key in keys[i % 2:] + keys[:i % 2]:  # rotate who goes first
                w, c = timed(lambda k=key, f=fn: f(k))
                wall[key].append(w)
                cpu[key].append(c)
        med = {k: statistics.median(v) for k, v in wall.items()}
        med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
        result[label] = {"once_s": med["once"], "per_step_s": med["per step"],
                         "ratio": med["once"] / med["per step"],
                         "cpu_ratio": med_cpu["once"] / med_cpu["per step"]}
        # the two copies train apart from here on: re-sync weights for the next measurement
        models["per step"].load_state_dict(models["once"].state_dict())
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# A time-repeated input computed once (directly encoded SNNs)", "",
        f"torch {result['torch']}, {result['threads']} thread(s), {result['repeats']} "
        f"interleaved samples per variant (medians), 1-min load average "
        f"{result['load'][0]:.1f} at start, {result['load'][1]:.1f} at end (2 cores). "
        "once = devprune's multi-step layers on the encoder's broadcast view (one step "
        "computed, then broadcast); per step = the same model and weights with the encoder "
        "output materialised, every layer folding all T steps. Ratio = once / per step "
        "(lower is faster).", "",
        "| model | T | batch | train step once s | per step s | ratio | CPU ratio | "
        "inference once s | per step s | ratio | CPU ratio | max output difference |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["models"]:
        t, i = r["train"], r["inference"]
        lines.append(
            f"| {r['model']} | {r['T']} | {r['batch']} | {t['once_s']:.4f} | "
            f"{t['per_step_s']:.4f} | {t['ratio']:.2f} | {t['cpu_ratio']:.2f} | "
            f"{i['once_s']:.4f} | {i['per_step_s']:.4f} | {i['ratio']:.2f} | "
            f"{i['cpu_ratio']:.2f} | {r['max_output_difference']:.1e} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--only", nargs="*", default=None, help="model names to run")
    parser.add_argument("--out", type=Path, default=RESULTS / "repeated_input")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = [os.getloadavg()[0]]
    rows = [bench_model(*spec, args.repeats) for spec in MODELS
            if args.only is None or spec[0] in args.only]
    load.append(os.getloadavg()[0])
    result = {"torch": torch.__version__, "threads": args.threads, "repeats": args.repeats,
              "load": load, "models": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
