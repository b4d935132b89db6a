"""An snnTorch network with a recurrent spiking layer (``snn.RLeaky``) pruned by DPAP in the
user's own training loop, on real MNIST.

The model is plain snnTorch: ``nn.Linear`` -> ``snn.RLeaky(linear_features=H)`` (all-to-all
recurrent weights ``lif1.recurrent``) -> ``nn.Linear`` -> ``snn.Leaky``, stepped over T steps
inside ``forward``. devprune sees the recurrent weight as a layer whose rows and columns are
the hidden neurons (docs/RECURRENT.md): DPAP prunes a neuron's feed-forward row, recurrent row
and recurrent column together. At the end the script measures the model, checks that no
neuron counted dead fires, compacts it and checks equal outputs.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/rleaky_mnist.py [--epochs 3] [--write]

Needs snntorch and the MNIST files (``devprune data fetch mnist``). Uses a seeded subset of
MNIST (20,000 training images by default; the 10,000 test images) to stay near a minute of CPU.
``run()`` is what tests/pruning/test_dpap_recurrent.py calls; ``--write`` writes
experiments/results/rleaky_mnist.{md,json}.
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

RESULTS = Path(__file__).resolve().parent / "results"
SETTINGS: dict[str, Any] = {"every_batches": 20, "start": 0, "e0": 0,
                            "fc_neuron_reserve": 5.0, "fc_synapse_reserve": 5.0}


class RLeakyNet(nn.Module):
    """784 -> Linear -> RLeaky(hidden, all-to-all recurrence) -> Linear -> Leaky; direct
    encoding (the image is the input current at every step), output = mean output spikes."""

    def __init__(self, hidden: int = 128, time_steps: int = 4, classes: int = 10) -> None:
        super().__init__()
        import snntorch as snn

        self.time_steps = time_steps
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(28 * 28, hidden)
        self.lif1 = snn.RLeaky(beta=0.9, linear_features=hidden)
        self.fc2 = nn.Linear(hidden, classes)
        self.lif2 = snn.Leaky(beta=0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)
        spk1, mem1 = self.lif1.init_rleaky()
        mem2 = self.lif2.init_leaky()
        out = []
        for _ in range(self.time_steps):
            spk1, mem1 = self.lif1(self.fc1(x), spk1, mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            out.append(spk2)
        return torch.stack(out).mean(0)


@torch.no_grad()
def dead_but_firing(model: RLeakyNet, masks: Any, x: torch.Tensor) -> int:
    """Hidden neurons the masks count dead (no kept row in fc1 nor in the recurrence) that
    still emit a spike on ``x``: 0 when the recurrence is pruned with them."""
    spikes = []
    handle = model.lif1.register_forward_hook(lambda _m, _i, out: spikes.append(out[0]))
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        handle.remove()
        model.train(was_training)
    dead = ~(masks.unit_alive("fc1") | masks.unit_alive("lif1.recurrent"))
    fired = torch.stack(spikes).sum(dim=(0, 1)) > 0
    return int((dead & fired).sum())


def dense_accuracy(*, train_samples: int = 20000, test_samples: int = 10000, epochs: int = 3,
                   batch: int = 100, hidden: int = 128, time_steps: int = 4, seed: int = 0,
                   lr: float = 5e-3) -> float:
    """The same recipe without pruning: the reference accuracy."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    data = load_split("mnist", train_samples, test_samples, generator)
    model = RLeakyNet(hidden, time_steps)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    pruner = build_pruner("none", model, data[0][:batch])
    fit(model, pruner, optimizer, data, epochs=epochs, batch=batch, loss_fn=rate_mse,
        generator=generator)
    return accuracy(model, data[2], data[3])


def run(*, train_samples: int = 20000, test_samples: int = 10000, epochs: int = 3,
        batch: int = 100, hidden: int = 128, time_steps: int = 4, seed: int = 0,
        lr: float = 5e-3, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train with DPAP (``settings``: prune.dpap fields, default :data:`SETTINGS`), measure
    and compact; returns the numbers (JSON-able)."""
    settings = {**SETTINGS, **(settings or {})}
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    data = load_split("mnist", train_samples, test_samples, generator)
    x_train, x_test, y_test = data[0], data[2], data[3]
    model = RLeakyNet(hidden, time_steps)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    pruner = build_pruner("dpap", model, x_train[:batch], settings)
    pruner.bind_optimizer(optimizer)
    recurrent_tap = next(t for t in pruner.recorder.taps if t.layer == "lif1.recurrent")
    worst_pruned = [0.0]

    def check_pruned() -> None:
        worst_pruned[0] = max(worst_pruned[0], pruned_weight_max(model, pruner.masks))

    history = fit(model, pruner, optimizer, data, epochs=epochs, batch=batch,
                  loss_fn=rate_mse, generator=generator, after_step=check_pruned)
    model.eval()
    masks = pruner.masks
    static = static_metrics(model, masks)
    work = workload_metrics(model, [(x_test[:200], y_test[:200])], max_batches=1)
    small = compact(model, masks, x_test[:200])
    with torch.no_grad():
        equal = bool(torch.equal(model(x_test[:500]), small(x_test[:500])))
    units = {name: [int(masks.unit_alive(name).sum()), int(masks.unit_alive(name).numel())]
             for name in masks.names()}
    return {
        "train_samples": train_samples, "test_samples": test_samples, "epochs": epochs,
        "hidden": hidden, "time_steps": time_steps, "seed": seed, "settings": settings,
        "seconds": history[-1]["seconds"],
        "history": history,
        "layers": [la.name for la in pruner.layers],
        "recurrent_pre_module": recurrent_tap.pre_module,
        "recurrent_post_module": recurrent_tap.post_module,
        "test_accuracy": accuracy(model, x_test, y_test),
        "compacted_test_accuracy": accuracy(small, x_test, y_test),
        "connectivity": static["Connectivity"],
        "layer_connectivity": {n: static["layers"][n]["connectivity"] for n in masks.names()},
        "units_alive": units,
        "dead_but_firing": dead_but_firing(model, masks, x_test[:500]),
        "max_abs_pruned_weight": worst_pruned[0],
        "params": sum(p.numel() for p in model.parameters()),
        "params_compacted": sum(p.numel() for p in small.parameters()),
        "compacted_shapes": {n: list(dict(small.named_modules())[n].weight.shape)
                             for n in ["fc1", "lif1.recurrent", "fc2"]},
        "compacted_outputs_equal": equal,
        "firing_rate": work["FiringRate"],
        "recurrent_ACs_per_sample": work["connections"]["lif1.recurrent"]["Effective_ACs"],
        "synaptic_operations": work["SynapticOperations"],
    }


def markdown(result: dict[str, Any], command: str) -> str:
    """The results page."""
    r = result
    lines = [
        "# An snnTorch RLeaky network pruned by DPAP in a user's loop (real MNIST)",
        "",
        f"`{command}` (snntorch, torch CPU, 1 thread, seed {r['seed']}; raw numbers in "
        "`rleaky_mnist.json`).",
        "",
        f"Model: plain snnTorch, T={r['time_steps']}, direct encoding: "
        f"Linear(784->{r['hidden']}) - `snn.RLeaky(beta=0.9, linear_features={r['hidden']})` "
        f"(all-to-all recurrent weight `lif1.recurrent`, {r['hidden']}x{r['hidden']}) - "
        f"Linear({r['hidden']}->10) - `snn.Leaky`; rate readout, MSE loss, Adam 5e-3. DPAP "
        f"through `build_pruner(\"dpap\", ...)` (every {r['settings']['every_batches']} "
        f"batches, neuron and synapse reserves {r['settings']['fc_neuron_reserve']}) on the layers "
        f"{', '.join(f'`{n}`' for n in r['layers'])}. The recurrent weight's presynaptic "
        f"activity is recorded at `{r['recurrent_pre_module']}` (its input: the hidden "
        f"neurons' previous-step spikes), its postsynaptic activity at "
        f"`{r['recurrent_post_module']}`. A subset of MNIST: {r['train_samples']:,} training "
        f"images (a seeded random subset), {r['epochs']} epochs; accuracy on "
        f"{r['test_samples']:,} test images.",
        "",
        "| epoch | test accuracy | connectivity (pruned layers) | hidden neurons alive "
        "| neurons pruned this epoch |",
        "|---|---|---|---|---|",
        *(f"| {h['epoch']} | {100 * h['test_accuracy']:.2f}% | {100 * h['connectivity']:.1f}% "
          f"| {h['units_alive']['fc1']}/{r['hidden']} | {h['units_pruned']['fc1']} |"
          for h in r["history"]),
        "",
        f"- Same recipe without pruning: {100 * r['dense_test_accuracy']:.2f}%.",
        f"- Connectivity after training: {100 * r['connectivity']:.1f}% (`static_metrics`; "
        + ", ".join(f"`{n}` {100 * c:.1f}%" for n, c in r["layer_connectivity"].items())
        + ").",
        "- Units alive per layer: "
        + ", ".join(f"`{n}` {a}/{t}" for n, (a, t) in r["units_alive"].items())
        + " (a hidden neuron is removed with its feed-forward row and its recurrent row "
        "and column).",
        f"- Hidden neurons counted dead that still fired on 500 test images: "
        f"{r['dead_but_firing']}.",
        f"- Pruned weights after every optimizer step: max |w| = {r['max_abs_pruned_weight']}.",
        f"- Recurrent synaptic operations: {r['recurrent_ACs_per_sample']:.0f} ACs per sample "
        f"(all layers: {r['synaptic_operations']['Effective_ACs']:.0f} ACs, "
        f"{r['synaptic_operations']['Effective_MACs']:.0f} MACs; hidden+output firing rate "
        f"{r['firing_rate']:.3f}).",
        f"- Compaction: {r['params']:,} -> {r['params_compacted']:,} parameters ("
        + ", ".join(f"`{n}` {s}" for n, s in r["compacted_shapes"].items())
        + f"); outputs on 500 test images bit-identical to the masked model: "
        f"{r['compacted_outputs_equal']}; accuracy {100 * r['test_accuracy']:.2f}% before, "
        f"{100 * r['compacted_test_accuracy']:.2f}% after.",
        f"- {r['seconds']} s of training with DPAP on the shared CPU.",
        "",
        "`tests/pruning/test_dpap_recurrent.py` runs a shorter version (2,000 images, 2 epochs, "
        "64 hidden neurons, reserves 2.0) and asserts these properties.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-samples", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true",
                        help="write experiments/results/rleaky_mnist.{md,json}")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = run(epochs=args.epochs, train_samples=args.train_samples)
    result["dense_test_accuracy"] = dense_accuracy(epochs=args.epochs,
                                                   train_samples=args.train_samples)
    print(json.dumps(result, indent=2))
    if args.write:
        command = "OMP_NUM_THREADS=1 .venv/bin/python experiments/rleaky_mnist.py --write"
        if args.epochs != 3 or args.train_samples != 20000:
            command += f" --epochs {args.epochs} --train-samples {args.train_samples}"
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "rleaky_mnist.json").write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / "rleaky_mnist.md").write_text(markdown(result, command))


if __name__ == "__main__":
    main()
