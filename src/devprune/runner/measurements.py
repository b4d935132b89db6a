"""What a run measures each epoch: structure (always) and workload (when devprune.measure can).

``devprune.measure`` is the one definition of every metric (PRODUCT.md, "Measurement
conventions"). The runner only records its results; the weight-count fallback below keeps
connectivity and units alive in the log when that package is absent from an installation.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn

from devprune.pruning.base import Pruner
from devprune.runner.config import MeasureConfig
from devprune.runner.metrics import structure_metrics, to_jsonable


def _measure_function(name: str) -> Any:
    try:
        module = importlib.import_module("devprune.measure")
    except ModuleNotFoundError as err:
        if err.name not in ("devprune.measure", "devprune"):
            raise
        return None
    return getattr(module, name, None)


def measure_static(model: nn.Module, pruner: Pruner) -> dict[str, Any]:
    """Connectivity, parameter counts and units alive per layer (plus NeuroBench names)."""
    record = structure_metrics(model)
    static_metrics = _measure_function("static_metrics")
    if static_metrics is not None:
        record["static"] = to_jsonable(static_metrics(model, getattr(pruner, "masks", None)))
    return record


@torch.no_grad()
def measure_workload(model: nn.Module, loader: Any, cfg: MeasureConfig,
                     device: torch.device) -> dict[str, Any] | None:
    """Firing rates, SOPs, MACs and energy per sample on the measurement subset."""
    workload_metrics = _measure_function("workload_metrics")
    if workload_metrics is None:
        return None
    was_training = model.training
    model.eval()
    try:
        result = workload_metrics(model, loader, mac_energy_pj=cfg.energy_mac_pj,
                                  ac_energy_pj=cfg.energy_ac_pj, device=device)
    finally:
        model.train(was_training)
    return to_jsonable(result)
