"""Per-batch training overhead of a pruning method: one training step (forward, backward,
optimizer step) with the method's hooks divided by the same step without them, medians over
interleaved steps in one process, in wall and in CPU time; then the same once the method has
settled (its last structural step passed: nothing recorded any more). Shared by
bench_dpap.py and bench_sdsnn.py.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from devprune.models import build_model
from devprune.pruning import build_pruner
from devprune.pruning.base import Pruner


def training_overhead(method: str, config: dict[str, Any], model_name: str,
                      in_shape: tuple[int, ...], batch: int, steps: int, repeats: int, *,
                      develop: Callable[[Pruner], None] | None = None,
                      settle: Callable[[Pruner], None]) -> dict[str, Any]:
    """``develop(pruner)`` puts the method in its developing phase (default: as built),
    ``settle(pruner)`` past its last structural step."""
    torch.manual_seed(0)
    model = build_model(model_name, in_shape=in_shape, num_classes=10, time_steps=steps)
    x, y = torch.rand(batch, *in_shape), torch.randint(0, 10, (batch,))
    target = torch.nn.functional.one_hot(y, 10).float()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    pruner = build_pruner(method, model, x, config)
    pruner.bind_optimizer(opt)
    if develop is not None:
        develop(pruner)

    def step(with_hooks: bool) -> None:
        if with_hooks:
            pruner.on_batch_start()
        loss = (model(x) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        if with_hooks:
            pruner.on_after_backward()
        opt.step()
        if with_hooks:
            pruner.on_after_step()
            pruner.on_batch_end()

    for flag in (False, True):  # warm-up both paths
        step(flag)

    def interleaved() -> tuple[float, ...]:
        """Medians of (plain, hooked) wall and CPU time per step, interleaved so that
        machine load hits both alike."""
        wall: dict[bool, list[float]] = {False: [], True: []}
        cpu: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(repeats):
            for flag in (False, True):
                start, start_cpu = time.perf_counter(), time.process_time()
                step(flag)
                wall[flag].append(time.perf_counter() - start)
                cpu[flag].append(time.process_time() - start_cpu)
        return tuple(statistics.median(v) for v in (wall[False], wall[True], cpu[False],
                                                     cpu[True]))

    dense, pruned, dense_cpu, pruned_cpu = interleaved()
    settle(pruner)
    e, e_p, e_cpu, e_p_cpu = interleaved()
    pruner.detach()
    return {"model": model_name, "mode": config.get("mode", "default"), "batch": batch,
            "T": steps, "dense_step_s": dense, "pruned_step_s": pruned,
            "ratio": pruned / dense, "cpu_ratio": pruned_cpu / dense_cpu,
            "after_end_ratio": e_p / e, "after_end_cpu_ratio": e_p_cpu / e_cpu}


def overhead_table(rows: list[dict[str, Any]], method: str) -> list[str]:
    """Markdown rows of :func:`training_overhead` results."""
    lines = [f"| model | mode | batch | T | dense s | {method} s | ratio | CPU ratio | "
             "after end | after end (CPU) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['mode']} | {r['batch']} | {r['T']} | "
                     f"{r['dense_step_s']:.4f} | {r['pruned_step_s']:.4f} | {r['ratio']:.3f} | "
                     f"{r['cpu_ratio']:.3f} | {r['after_end_ratio']:.3f} | "
                     f"{r['after_end_cpu_ratio']:.3f} |")
    return lines
