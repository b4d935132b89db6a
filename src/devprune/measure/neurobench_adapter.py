"""Run NeuroBench's own ``Benchmark`` on a model and put devprune's numbers beside it.

``neurobench_results(model, inputs, targets)`` wraps the model in NeuroBench's
``TorchModel`` (devprune, snnTorch and SpikingJelly neurons registered as activation
modules), runs its static metrics (ParameterCount, Footprint, ConnectionSparsity) and
workload metrics (ClassificationAccuracy, ActivationSparsity, SynapticOperations; and
MembraneUpdates / NeuronOperations where NeuroBench can read the membranes, i.e. snnTorch
neurons), and measures the same model on the same batches with devprune. NeuroBench
2.3.0 reads membranes only from snnTorch neurons, so for devprune's neurons those two keys
come from devprune (``devprune.measure.neurons``; equal to NeuroBench's on the snnTorch twin
of a devprune network, tests/measure/test_membrane.py) and ``sources`` says so.

``neurobench`` is optional and imported only here (it declares a CUDA torch: install it
with ``pip install --no-deps neurobench``).
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

import torch
from torch import nn

from devprune.errors import ConfigError
from devprune.kinds import is_spiking_neuron, neuron_library
from devprune.measure.static import static_metrics
from devprune.measure.workload import workload_metrics
from devprune.snn.base import BaseNeuron

KEYS = ("ParameterCount", "Footprint", "ConnectionSparsity", "ClassificationAccuracy",
        "ActivationSparsity", "SynapticOperations", "MembraneUpdates", "NeuronOperations")


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError(
            "--neurobench needs the neurobench package: pip install --no-deps neurobench "
            "(its declared dependencies would pull a CUDA torch)") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return value


def _has_snntorch_neurons(model: nn.Module) -> bool:
    return any(neuron_library(m) == "snntorch" and is_spiking_neuron(m)
               for m in model.modules())


def neurobench_results(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *,
                       batch_size: int = 100, masks: Any = None) -> dict[str, Any]:
    """NeuroBench's results and devprune's same-named numbers on ``(inputs, targets)``."""
    _import("neurobench")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
    from neurobench.metrics.workload import (
        ActivationSparsity,
        ClassificationAccuracy,
        MembraneUpdates,
        NeuronOperations,
        SynapticOperations,
    )
    from neurobench.models import TorchModel
    from torch.utils.data import DataLoader, TensorDataset

    model = model.eval()
    wrapped = TorchModel(model)
    wrapped.add_activation_module(BaseNeuron)
    for cls in {type(m) for m in model.modules()}:
        names = {f"{c.__module__}.{c.__name__}" for c in cls.__mro__}
        if any(n.startswith(("snntorch.", "spikingjelly.")) and
               n.endswith((".SpikingNeuron", ".BaseNode")) for n in names):
            wrapped.add_activation_module(cls)
    workload = [ClassificationAccuracy, ActivationSparsity, SynapticOperations]
    membranes_by_neurobench = _has_snntorch_neurons(model)
    if membranes_by_neurobench:
        workload += [MembraneUpdates, NeuronOperations]
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=batch_size)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        theirs = Benchmark(wrapped, loader, [], [lambda preds: preds.argmax(-1)],
                           [[ParameterCount, Footprint, ConnectionSparsity], workload]
                           ).run(quiet=True)
    batches = [(inputs[i:i + batch_size], targets[i:i + batch_size])
               for i in range(0, len(inputs), batch_size)]
    static = static_metrics(model, masks, example_input=inputs[:2])
    work = workload_metrics(model, batches, through_pooling=False)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        correct = sum(int((model(x).argmax(-1) == y).sum()) for x, y in batches)
    ours = {
        "ParameterCount": static["ParameterCount"],
        "Footprint": static["Footprint"],
        "ConnectionSparsity": static["ConnectionSparsity"],
        "ClassificationAccuracy": correct / len(inputs),
        "ActivationSparsity": work["ActivationSparsity"],
        "SynapticOperations": {k: work["SynapticOperations"][k]
                               for k in ("Effective_MACs", "Effective_ACs", "Dense")},
        "MembraneUpdates": work["MembraneUpdates"],
        "NeuronOperations": {"Effective Neuron Ops": work["NeuronOperations"]["Effective"],
                             "Neuron Dense Ops": work["NeuronOperations"]["Dense"]},
    }
    if not membranes_by_neurobench:
        theirs["MembraneUpdates"] = ours["MembraneUpdates"]
        theirs["NeuronOperations"] = ours["NeuronOperations"]
    source = "neurobench" if membranes_by_neurobench else \
        "devprune (NeuroBench 2.3.0 reads membranes of snnTorch neurons only)"
    return {
        "format": "devprune-neurobench",
        "neurobench_version": metadata.version("neurobench"),
        "samples": len(inputs),
        "neurobench": _jsonable({k: theirs[k] for k in KEYS if k in theirs}),
        "devprune": _jsonable(ours),
        "sources": {k: ("neurobench" if k not in ("MembraneUpdates", "NeuronOperations")
                        else source) for k in KEYS},
        "notes": {
            "SynapticOperations": "devprune side measured with through_pooling=False "
                                  "(NeuroBench's rule: average-pooled spikes count as MACs)",
            "ConnectionSparsity": "NeuroBench rounds to 4 decimals",
        },
    }


def comparison_lines(result: dict[str, Any]) -> list[str]:
    """Markdown table: metric | NeuroBench | devprune."""
    theirs, ours = result["neurobench"], result["devprune"]
    lines = ["| metric | NeuroBench | devprune |", "|---|---|---|"]

    def fmt(value: Any) -> str:
        return f"{value:.6g}" if isinstance(value, float) else str(value)

    for key in KEYS:
        a, b = theirs.get(key), ours.get(key)
        if isinstance(a, dict) or isinstance(b, dict):
            for sub in (a or b):
                lines.append(f"| {key}.{sub} | {fmt((a or {}).get(sub))} | "
                             f"{fmt((b or {}).get(sub))} |")
        else:
            lines.append(f"| {key} | {fmt(a)} | {fmt(b)} |")
    return lines
