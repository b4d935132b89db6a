"""What a run measures each epoch, through ``devprune.measure`` (the one definition of every
metric, docs/MEASUREMENT.md#conventions): the runner only selects and records.

- static (every epoch): connectivity of the prunable layers and of all weight layers,
  parameter counts, units alive per layer, footprint, NeuroBench ``ConnectionSparsity``.
- workload (every ``measure.every`` epochs and after the last): firing rates, activation
  sparsity, SOPs (MACs / ACs), energy per sample, on ``measure.subset`` test samples with a
  fixed encoding seed, so the training RNG stream (and thus resume) is untouched.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from devprune.masks import MaskSet
from devprune.measure import static_metrics, workload_metrics
from devprune.runner.config import MeasureConfig
from devprune.runner.metrics import to_jsonable

# Per-layer fields copied to the top of each epoch record (the full table stays in "static").
LAYER_KEYS = ("prunable", "units_alive", "units_total", "weights_nonzero", "weights_total",
              "connectivity")


def measure_static(model: nn.Module, masks: MaskSet | None = None, *,
                   example_input: Any = None) -> dict[str, Any]:
    """Connectivity, parameter counts and units alive per layer, plus the full static table
    (``masks``: the pruner's; ``example_input``: for models discovery cannot trace)."""
    static = to_jsonable(static_metrics(model, masks, example_input=example_input))
    layers = {name: {k: record[k] for k in LAYER_KEYS if k in record}
              for name, record in static["layers"].items()}
    return {
        "connectivity": static["Connectivity"],
        "connectivity_all": static["Connectivity_all"],
        "params_total": static["ParameterCount"],
        "params_nonzero": static["ParameterCount_nonzero"],
        "layers": layers,
        "static": static,
    }


@torch.no_grad()
def measure_workload(model: nn.Module, loader: Any, cfg: MeasureConfig,
                     device: torch.device) -> dict[str, Any]:
    """Firing rates, SOPs, MACs and energy per sample on the measurement subset."""
    result = workload_metrics(model, loader, mac_energy_pj=cfg.energy_mac_pj,
                              ac_energy_pj=cfg.energy_ac_pj, device=device)
    return to_jsonable(result)
