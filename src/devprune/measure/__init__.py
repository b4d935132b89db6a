"""Measurement: static (weights, masks) and workload (data) metrics with NeuroBench names.

``static_metrics(model, masks=None)`` -> parameter counts, connectivity, units alive, footprint.
``workload_metrics(model, batches, energy=EnergyModel())`` -> firing rates, activation
sparsity, synaptic operations (MACs / ACs / dense), energy, all per sample.
``TimeLoop(model)`` steps a single-step (snnTorch-style) model over ``[B, T, ...]`` input.
``layer_table(static, workload)`` -> per-layer Markdown. Definitions: docs/MEASUREMENT.md.
"""

from devprune.measure.energy import EnergyModel
from devprune.measure.report import layer_table, summary_lines
from devprune.measure.static import static_metrics
from devprune.measure.timeloop import TimeLoop, reset_states
from devprune.measure.workload import workload_metrics

__all__ = ["EnergyModel", "TimeLoop", "layer_table", "reset_states", "static_metrics",
           "summary_lines", "workload_metrics"]
