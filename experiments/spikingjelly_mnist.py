"""A SpikingJelly CSNN pruned by DPAP (or SD-SNN) in the user's own training loop, on MNIST.

The model is plain SpikingJelly (``activation_based`` layers and LIF/IF nodes in multi-step
mode, BatchNorm, max and average pooling); devprune only sees an ``nn.Module``. The loop is the
README's: the pruner's hooks around forward/backward/step. At the end it measures the model
(devprune.measure), compacts it (devprune.compact) and checks equal outputs.

    .venv/bin/python experiments/spikingjelly_mnist.py [--method dpap|sdsnn] [--epochs 3]

Needs spikingjelly (installed with ``pip install --no-deps spikingjelly loguru``) and the
MNIST files (``devprune data fetch mnist``). ``run()`` is what tests/pruning call.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _userloop, also when loaded by path
from _userloop import accuracy, fit, load_split, pruned_weight_max, rate_mse

from devprune.compact import compact
from devprune.measure import static_metrics, workload_metrics
from devprune.pruning import build_pruner

SETTINGS: dict[str, dict[str, Any]] = {
    "dpap": {"every_batches": 20, "start": 0, "e0": 0, "conv_reserve": 2.0,
             "fc_neuron_reserve": 2.0, "fc_synapse_reserve": 2.0},
    "sdsnn": {"count_threshold": 1, "conv_rate": 20.0},
    "none": {},
}


class SpikingJellyCSNN(nn.Module):
    """conv(1->c1)-BN-IF-MaxPool2 - conv(c1->c2)-BN-LIF-AvgPool2 - FC(->hidden)-LIF - FC-LIF.

    Direct encoding (the image repeated T times); output = spike rate of the last layer.
    The neurons' state is reset at every forward, as SpikingJelly requires.
    """

    def __init__(self, time_steps: int = 4, c1: int = 12, c2: int = 24, hidden: int = 128,
                 classes: int = 10, side: int = 28) -> None:
        super().__init__()
        from spikingjelly.activation_based import functional, layer, neuron, surrogate

        self.time_steps = time_steps
        self._reset = functional.reset_net
        atan = surrogate.ATan
        self.net = nn.Sequential(
            layer.Conv2d(1, c1, 3, padding=1, bias=False, step_mode="m"),
            layer.BatchNorm2d(c1, step_mode="m"),
            neuron.IFNode(surrogate_function=atan(), detach_reset=True, step_mode="m"),
            layer.MaxPool2d(2, step_mode="m"),
            layer.Conv2d(c1, c2, 3, padding=1, bias=False, step_mode="m"),
            layer.BatchNorm2d(c2, step_mode="m"),
            neuron.LIFNode(tau=2.0, surrogate_function=atan(), detach_reset=True,
                           step_mode="m"),
            layer.AvgPool2d(2, step_mode="m"),
            layer.Flatten(step_mode="m"),
            layer.Linear(c2 * (side // 4) ** 2, hidden, step_mode="m"),
            neuron.LIFNode(tau=2.0, surrogate_function=atan(), detach_reset=True,
                           step_mode="m"),
            layer.Linear(hidden, classes, step_mode="m"),
            neuron.LIFNode(tau=2.0, surrogate_function=atan(), detach_reset=True,
                           step_mode="m"),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._reset(self.net)
        frames = x.unsqueeze(0).repeat(self.time_steps, 1, 1, 1, 1)  # [T, B, C, H, W]
        return self.net(frames).mean(0)


def run(method: str = "dpap", *, train_samples: int = 6000, test_samples: int = 2000,
        epochs: int = 3, batch: int = 100, time_steps: int = 4, seed: int = 0,
        lr: float = 5e-3) -> dict[str, Any]:
    """Train, prune, measure and compact; returns the numbers (JSON-able)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    data = load_split("mnist", train_samples, test_samples, generator)
    x_train, x_test, y_test = data[0], data[2], data[3]
    model = SpikingJellyCSNN(time_steps)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    pruner = build_pruner(method, model, x_train[:batch], SETTINGS[method])
    pruner.bind_optimizer(optimizer)
    worst_pruned = [0.0]

    def check_pruned() -> None:
        worst_pruned[0] = max(worst_pruned[0], pruned_weight_max(model, pruner.masks))

    history = fit(model, pruner, optimizer, data, epochs=epochs, batch=batch,
                  loss_fn=rate_mse, generator=generator, after_step=check_pruned)
    model.eval()
    masks = pruner.masks
    static = static_metrics(model, masks)
    work = workload_metrics(model, [(x_test[:200], y_test[:200])], max_batches=1)
    small = compact(model, masks, x_test[:200]) if masks is not None else model
    with torch.no_grad():
        equal = bool(torch.equal(model(x_test[:500]), small(x_test[:500])))
    units = {name: [int(masks.unit_alive(name).sum()), int(masks.unit_alive(name).numel())]
             for name in (masks.names() if masks is not None else [])}
    return {
        "method": method,
        "train_samples": train_samples, "epochs": epochs, "time_steps": time_steps,
        "seconds": history[-1]["seconds"],
        "history": history,
        "test_accuracy": accuracy(model, x_test, y_test),
        "compacted_test_accuracy": accuracy(small, x_test, y_test),
        "connectivity": static["Connectivity"],
        "units_alive": units,
        "max_abs_pruned_weight": worst_pruned[0],
        "params": sum(p.numel() for p in model.parameters()),
        "params_compacted": sum(p.numel() for p in small.parameters()),
        "compacted_outputs_equal": equal,
        "firing_rate": work["FiringRate"],
        "synaptic_operations": work["SynapticOperations"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=sorted(SETTINGS), default="dpap")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-samples", type=int, default=6000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(run(args.method, epochs=args.epochs, train_samples=args.train_samples),
                     indent=2))


if __name__ == "__main__":
    main()
