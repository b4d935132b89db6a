"""DPAP's defaults on models written outside the project, trained in the user's own loop.

Four models as their libraries' users write them: an snnTorch CSNN (the tutorial's
``nn.Sequential`` of Conv2d/MaxPool/``snn.Leaky(init_hidden=True)``), a SpikingJelly
multi-step CSNN, a plain PyTorch MLP and a ResNet-18-like ANN (BasicBlocks [2, 2, 2, 2]).
Each trains a few epochs on real data, dense and with ``build_pruner("dpap", model, x,
epochs=E, batches_per_epoch=B)``: DPAP's defaults fitted to the declared run length
(docs/DPAP.md#dpap-run-length), nothing else set; ``dpap-reserve10`` is the same with the
reference's reserve P0 = 10 given explicitly (the fit then only sets the cadence);
``dpap-conv15`` gives the conv reserve 15 (the fitted default before conv reserves stayed 10).

    .venv/bin/python experiments/user_models.py [--models snntorch-csnn mlp ...] [--seeds 0 1]

Writes experiments/results/user_models.{json,md}; finished (model, method, seed) entries are
kept, so the script resumes. snnTorch and SpikingJelly are optional: their models are
skipped with a note when the package is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from _userloop import accuracy, fit, load_split, rate_mse
from torch import nn

from devprune.measure import static_metrics
from devprune.pruning import build_pruner

RESULTS = Path(__file__).resolve().parent / "results"
# Settings each DPAP variant passes to build_pruner beside epochs= and batches_per_epoch=.
DPAP_VARIANTS: dict[str, dict[str, float]] = {
    "dpap": {},
    "dpap-reserve10": {"conv_reserve": 10.0, "fc_neuron_reserve": 10.0,
                       "fc_synapse_reserve": 10.0},
    # the fitted defaults before conv reserves stayed at 10 (all three conv models kept
    # every filter): the record of why they stay
    "dpap-conv15": {"conv_reserve": 15.0},
}


# --------------------------------------------------------------------------------------------
# The models, as their libraries' users write them
# --------------------------------------------------------------------------------------------
class SnnTorchCSNN(nn.Module):
    """snnTorch tutorial 6's CSNN: 12C5-MP2-Leaky-64C5-MP2-Leaky-FC10-Leaky, beta 0.5, fast
    sigmoid surrogate, hidden state inside the neurons; output = spike count over T."""

    def __init__(self, time_steps: int = 8) -> None:
        super().__init__()
        import snntorch as snn
        from snntorch import surrogate, utils

        self.time_steps = time_steps
        self._reset = utils.reset
        grad = surrogate.fast_sigmoid(slope=25)
        self.net = nn.Sequential(
            nn.Conv2d(1, 12, 5), nn.MaxPool2d(2),
            snn.Leaky(beta=0.5, spike_grad=grad, init_hidden=True),
            nn.Conv2d(12, 64, 5), nn.MaxPool2d(2),
            snn.Leaky(beta=0.5, spike_grad=grad, init_hidden=True),
            nn.Flatten(), nn.Linear(64 * 4 * 4, 10),
            snn.Leaky(beta=0.5, spike_grad=grad, init_hidden=True, output=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._reset(self.net)
        return torch.stack([self.net(x)[0] for _ in range(self.time_steps)]).sum(0)


def spikingjelly_csnn() -> nn.Module:
    from spikingjelly_mnist import SpikingJellyCSNN  # the multi-step CSNN of that example

    return SpikingJellyCSNN(time_steps=4)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256),
                         nn.ReLU(), nn.Linear(256, 10))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18Like(nn.Module):
    """ResNet-18's layout (BasicBlocks [2, 2, 2, 2]) at widths 16-128 for 28x28 images."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks, cin = [], widths[0]
        for stage, width in enumerate(widths):
            for index in range(2):
                blocks.append(BasicBlock(cin, width, 2 if stage and not index else 1))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(out, y)


@dataclass(frozen=True)
class UserModel:
    build: Callable[[], nn.Module]
    dataset: str
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    lr: float
    needs: str | None = None  # optional package


MODELS: dict[str, UserModel] = {
    "snntorch-csnn": UserModel(SnnTorchCSNN, "mnist", cross_entropy, 2e-3, "snntorch"),
    "spikingjelly-csnn": UserModel(spikingjelly_csnn, "mnist", rate_mse, 5e-3, "spikingjelly"),
    "mlp": UserModel(mlp, "mnist", cross_entropy, 1e-3),
    "resnet18-like": UserModel(ResNet18Like, "fashion-mnist", cross_entropy, 1e-3),
}


# --------------------------------------------------------------------------------------------
# One run and the tables
# --------------------------------------------------------------------------------------------
def run(name: str, method: str, seed: int, *, epochs: int, train_samples: int,
        test_samples: int, batch: int) -> dict[str, Any]:
    spec = MODELS[name]
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    data = load_split(spec.dataset, train_samples, test_samples, generator)
    model = spec.build()
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
    batches = -(-train_samples // batch)
    pruner = (build_pruner("none", model, data[0][:batch]) if method == "none" else
              build_pruner("dpap", model, data[0][:batch], DPAP_VARIANTS[method],
                           epochs=epochs, batches_per_epoch=batches))
    pruner.bind_optimizer(optimizer)
    history = fit(model, pruner, optimizer, data, epochs=epochs, batch=batch,
                  loss_fn=spec.loss, generator=generator)
    masks = pruner.masks
    units = {layer: [int(masks.unit_alive(layer).sum()), int(masks.unit_alive(layer).numel())]
             for layer in (masks.names() if masks is not None else [])}
    return {"model": name, "dataset": spec.dataset, "method": method, "seed": seed,
            "epochs": epochs, "train_samples": train_samples, "test_samples": test_samples,
            "test_accuracy": accuracy(model, data[2], data[3]),
            "connectivity": static_metrics(model, masks)["Connectivity"] if masks else 1.0,
            "units_alive": units, "history": history,
            "settings": _schedule(pruner)}


def _schedule(pruner: Any) -> dict[str, Any]:
    config = getattr(pruner, "config", None)
    keys = ("every_batches", "start", "e0", "end", "fc_neuron_reserve", "conv_reserve")
    return {key: getattr(config, key) for key in keys if hasattr(config, key)}


def markdown(results: list[dict[str, Any]], command: str, args: argparse.Namespace) -> str:
    lines = [
        "# DPAP defaults on users' own models", "",
        f"Command: `{command}`", "",
        f"Each model trains {args.epochs} epochs on {args.train_samples:,} training images of "
        f"its dataset (a seeded subset) with Adam, batch {args.batch}, in the user's own loop "
        f"(experiments/_userloop.py); test on the first {args.test_samples:,} test images. "
        "`dpap`: `build_pruner(\"dpap\", model, x, epochs=E, batches_per_epoch=B)`, the "
        "defaults fitted to the run (cadence, and linear reserves raised to 15 for a short "
        "run, conv reserves kept at 10; docs/DPAP.md#dpap-run-length); `dpap-conv15`: the "
        "same with the conv reserve at 15 too (the fitted default before; it pruned no "
        "filter); `dpap-reserve10`: the same with every reserve at the reference's 10. "
        "Dense: the same loop without pruning. Kept: the pruned layers' "
        "kept fraction of weights. A cadence ending at `None` was measured before DPAP had "
        "`end` (commit 23fb280): the same steps, but the last epoch could still prune.", "",
        "| model | data | seed | variant | dense test % | DPAP test % | DPAP - dense (pts) | "
        "kept % | units alive | cadence | P0 (fc) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_key = {(r["model"], r["method"], r["seed"]): r for r in results}
    gaps: dict[tuple[str, str], list[float]] = {}
    for (name, method, seed), dpap in sorted(by_key.items()):
        dense = by_key.get((name, "none", seed))
        if method == "none" or dense is None:
            continue
        gap = 100 * (dpap["test_accuracy"] - dense["test_accuracy"])
        gaps.setdefault((name, method), []).append(gap)
        alive = sum(a for a, _ in dpap["units_alive"].values())
        total = sum(b for _, b in dpap["units_alive"].values())
        cadence = dpap["settings"]
        lines.append(
            f"| {name} | {dpap['dataset']} | {seed} | {method} | "
            f"{100 * dense['test_accuracy']:.2f} | {100 * dpap['test_accuracy']:.2f} | "
            f"{gap:+.2f} | {100 * dpap['connectivity']:.1f} | {alive}/{total} | every "
            f"{cadence.get('every_batches')} batches, steps {cadence.get('start')}-"
            f"{cadence.get('end')} | {cadence.get('fc_neuron_reserve', '-')} |")
    lines += ["", "| model | variant | seeds | mean DPAP - dense (pts) | worst (pts) | "
              "within 1 pt |", "|---|---|---|---|---|---|"]
    for (name, method), values in sorted(gaps.items()):
        mean = sum(values) / len(values)
        lines.append(f"| {name} | {method} | {len(values)} | {mean:+.2f} | {min(values):+.2f} | "
                     f"{'yes' if min(values) >= -1.0 else 'NO'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=sorted(MODELS))
    parser.add_argument("--methods", nargs="+", default=["none", *DPAP_VARIANTS],
                        choices=["none", *DPAP_VARIANTS])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-samples", type=int, default=10000)
    parser.add_argument("--test-samples", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "user_models")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = args.out.with_suffix(".json")
    results = json.loads(path.read_text()) if path.exists() else []
    done = {(r["model"], r["method"], r["seed"]) for r in results}
    for name in args.models:
        needs = MODELS[name].needs
        if needs and not _importable(needs):
            print(f"[user-models] {name}: skipped ({needs} is not installed)")
            continue
        for seed in args.seeds:
            for method in args.methods:
                if (name, method, seed) in done:
                    continue
                print(f"[user-models] {name} {method} seed {seed}", flush=True)
                results.append(run(name, method, seed, epochs=args.epochs,
                                   train_samples=args.train_samples,
                                   test_samples=args.test_samples, batch=args.batch))
                _write(path, json.dumps(results, indent=1))
    command = shlex.join([".venv/bin/python", "experiments/user_models.py", *sys.argv[1:]])
    _write(path.with_suffix(".md"), markdown(results, command, args))
    print(path.with_suffix(".md").read_text())


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _write(path: Path, text: str) -> None:
    """Atomic write (a killed run never leaves half a results file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
