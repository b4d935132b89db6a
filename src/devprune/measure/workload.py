"""Workload metrics: what the model does on data (firing rates, operations, energy).

Hooks record, per forward call,

* every Linear / Conv1d/2d/3d input: the input is **spikes** (accumulates, ACs) when every
  value is in {-1, 0, 1} (NeuroBench's rule), **pooled spikes** when it is the output of an
  average pool whose input was 0/1 (the pool is folded into the synapses: each spike is one
  AC per kept synapse of the pooled cell it falls in), and **real** (MACs) otherwise; the
  operation count is exact (:mod:`devprune.measure.synops`);
* every spiking neuron and activation module output: events (non-zero values) and elements.

Everything is reported per sample (divided by the number of samples, the size of dim 0 of
the model input), summed over all time steps, so multi-step (``[T, B, ...]``) layers and
single-step layers called once per step in a Python loop (snnTorch) give the same numbers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from devprune.errors import DataError, ModelStructureError
from devprune.kinds import WINDOWED_AVG_POOLS, avg_pool_dims, is_activation, is_spiking_neuron
from devprune.measure.energy import EnergyModel
from devprune.measure.neurons import MembraneProbes
from devprune.measure.synops import (
    SUPPORTED_LAYERS,
    binary_weight,
    count_ops,
    fold_rows,
    ops_per_row,
)
from devprune.snn.layers import is_multi_step
from devprune.structure import discover

DEFAULT_ENERGY = EnergyModel()  # frozen, so sharing one default instance is safe
# Tolerance when recovering spike counts from average-pooled values (mean of up to a few
# thousand 0/1 values in float32 is exact to ~1e-4 of one spike).
COUNT_TOLERANCE = 1e-3


@dataclass
class ConnectionRecord:
    """Totals for one weight layer over all calls."""

    effective_macs: float = 0.0
    effective_acs: float = 0.0
    dense: float = 0.0
    ann_macs: float = 0.0  # dense-input ops with the kept weights, summed over rows
    rows: int = 0  # per-step samples seen (T*B for a multi-step layer, B per single-step call)
    input_kinds: set[str] = field(default_factory=set)
    input_events: float = 0.0


@dataclass
class ActivationRecord:
    """Totals for one spiking neuron / activation module over all calls."""

    spiking: bool
    events: int = 0
    elements: int = 0
    neurons: int = 0


def _is_ternary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1) | (x == -1)).all())


def _is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def _storage_key(x: torch.Tensor) -> tuple[int, int]:
    # Flatten / view keep the storage and the element count: how a pooled tensor is recognised
    # at the next weight layer.
    return x.data_ptr(), x.numel()


def pool_divisor(pool: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int | None:
    """Constant number of inputs averaged per output, or None where it varies by position."""
    dims = avg_pool_dims(pool)
    if isinstance(pool, tuple(WINDOWED_AVG_POOLS)):
        if getattr(pool, "divisor_override", None):
            return int(pool.divisor_override)
        kernel = pool.kernel_size if isinstance(pool.kernel_size, tuple) else (pool.kernel_size,)
        padding = pool.padding if isinstance(pool.padding, tuple) else (pool.padding,)
        if pool.ceil_mode or (any(padding) and not pool.count_include_pad):
            return None
        return math.prod(kernel) if len(kernel) == dims else int(kernel[0]) ** dims
    sizes_in, sizes_out = x.shape[-dims:], y.shape[-dims:]
    if any(i % o for i, o in zip(sizes_in, sizes_out, strict=True)):
        return None
    return math.prod(i // o for i, o in zip(sizes_in, sizes_out, strict=True))


class _Recorder:
    """Hooks on every weight layer, neuron, activation and average pool of a model."""

    def __init__(self, model: nn.Module, through_pooling: bool) -> None:
        self.model = model
        self.through_pooling = through_pooling
        self.connections: dict[str, ConnectionRecord] = {}
        self.activations: dict[str, ActivationRecord] = {}
        self._pooled: dict[tuple[int, int], tuple[int, torch.Tensor]] = {}
        self._per_row: dict[tuple[str, tuple[int, ...], bool], float] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> _Recorder:
        for name, module in self.model.named_modules():
            self._attach(name, module)
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _attach(self, name: str, module: nn.Module) -> None:
        if isinstance(module, SUPPORTED_LAYERS):
            self.connections[name] = ConnectionRecord()
            self._handles.append(module.register_forward_pre_hook(
                lambda m, args, n=name: self._on_connection(n, m, args)))
        elif is_activation(module):
            self.activations[name] = ActivationRecord(spiking=is_spiking_neuron(module))
            self._handles.append(module.register_forward_hook(
                lambda m, args, out, n=name: self._on_activation(n, m, out)))
        elif self.through_pooling and avg_pool_dims(module) is not None:
            self._handles.append(module.register_forward_hook(self._on_pool))

    def end_batch(self) -> None:
        self._pooled.clear()

    # -- hooks ------------------------------------------------------------------------------
    def _on_pool(self, pool: nn.Module, args: tuple, output: Any) -> None:
        if not (args and torch.is_tensor(args[0]) and torch.is_tensor(output)):
            return
        if not _is_binary(args[0]):
            return
        divisor = pool_divisor(pool, args[0], output)
        if divisor is not None:
            # Keep a reference so the storage (the key) is not reused within the batch.
            self._pooled[_storage_key(output)] = (divisor, output)

    def _on_connection(self, name: str, layer: nn.Module, args: tuple) -> None:
        if not (args and torch.is_tensor(args[0])):
            return
        x = args[0].detach()
        rows = fold_rows(layer, x)
        kind, counts = self._classify(x, rows)
        ops = count_ops(layer, counts, binary_weight(layer))
        record = self.connections[name]
        if kind == "real":
            record.effective_macs += ops
        else:
            record.effective_acs += ops
        record.input_kinds.add(kind)
        record.input_events += float(counts.sum(dtype=torch.float64))
        row_shape = tuple(rows.shape[1:])
        record.dense += self._ops_per_row(name, layer, row_shape, True) * rows.shape[0]
        record.ann_macs += self._ops_per_row(name, layer, row_shape, False) * rows.shape[0]
        record.rows += rows.shape[0]

    def _classify(self, x: torch.Tensor, rows: torch.Tensor) -> tuple[str, torch.Tensor]:
        if _is_ternary(rows):
            return "spikes", (rows != 0).float()
        pooled = self._pooled.get(_storage_key(x))
        if pooled is not None:
            counts = rows.float() * pooled[0]
            rounded = counts.round()
            if bool((counts - rounded).abs().max() <= COUNT_TOLERANCE) and bool(rounded.min() >= 0):
                return "pooled spikes", rounded
        return "real", (rows != 0).float()

    def _ops_per_row(self, name: str, layer: nn.Module, row_shape: tuple[int, ...],
                     all_ones_weight: bool) -> float:
        # Data-independent, and the weights do not change during measurement: compute once.
        key = (name, row_shape, all_ones_weight)
        if key not in self._per_row:
            self._per_row[key] = ops_per_row(layer, torch.Size(row_shape),
                                             all_ones_weight=all_ones_weight,
                                             device=layer.weight.device)
        return self._per_row[key]

    def _on_activation(self, name: str, module: nn.Module, output: Any) -> None:
        out = output[0] if isinstance(output, (tuple, list)) else output
        if not torch.is_tensor(out) or out.dim() == 0:
            return
        record = self.activations[name]
        record.events += int(torch.count_nonzero(out))
        record.elements += out.numel()
        leading = out.shape[0] * out.shape[1] if is_multi_step(module) and out.dim() > 1 else (
            out.shape[0])
        record.neurons = out.numel() // max(leading, 1)


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------
def _inputs_of(batch: Any) -> torch.Tensor:
    if torch.is_tensor(batch):
        return batch
    if isinstance(batch, (tuple, list)) and batch and torch.is_tensor(batch[0]):
        return batch[0]
    raise DataError(
        f"workload_metrics: a batch must be a tensor or a (inputs, targets) pair; got "
        f"{type(batch).__name__}. Pass a loader yielding tensors or tuples."
    )


def _model_device(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


@contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Fixed random draws (Bernoulli encoding) that leave the caller's RNG streams as they were."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if seed is not None:
            torch.manual_seed(seed)
        yield


def _post_names(model: nn.Module, example: torch.Tensor) -> dict[str, str | None]:
    try:
        structure = discover(model, example)
    except ModelStructureError:
        return {}
    return {layer.name: layer.post_name for layer in structure.layers}


def _resolve_energy(energy: EnergyModel, mac_energy_pj: float | None,
                    ac_energy_pj: float | None) -> EnergyModel:
    return EnergyModel(
        mac_pj=energy.mac_pj if mac_energy_pj is None else float(mac_energy_pj),
        ac_pj=energy.ac_pj if ac_energy_pj is None else float(ac_energy_pj),
    )


def workload_metrics(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    energy: EnergyModel = DEFAULT_ENERGY,
    max_batches: int | None = None,
    device: torch.device | str | None = None,
    seed: int | None = 0,
    through_pooling: bool = True,
    mac_energy_pj: float | None = None,
    ac_energy_pj: float | None = None,
) -> dict[str, Any]:
    """Run ``model`` (eval mode, no grad) on ``batches`` and return per-sample workload metrics.

    ``batches`` yields input tensors or ``(inputs, targets)`` pairs; inputs go to ``device``
    (default: the model's). ``seed`` fixes random encodings for comparable measurements while
    leaving the global RNG untouched (None: draw from it). ``through_pooling=False`` applies
    NeuroBench's rule literally (average-pooled spikes count as MACs). ``mac_energy_pj`` /
    ``ac_energy_pj`` override ``energy``'s constants.
    """
    energy = _resolve_energy(energy, mac_energy_pj, ac_energy_pj)
    device = torch.device(device) if device is not None else _model_device(model)
    samples, example = 0, None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _seeded(seed, device), _Recorder(model, through_pooling) as rec, \
                MembraneProbes(model) as membranes:
            for index, batch in enumerate(batches):
                if max_batches is not None and index >= max_batches:
                    break
                inputs = _inputs_of(batch).to(device)
                membranes.new_pass()
                model(inputs)
                rec.end_batch()
                samples += inputs.shape[0]
                example = inputs[:2] if example is None else example
    finally:
        model.train(was_training)
    if example is None:
        raise DataError("workload_metrics: the batches were empty; nothing was measured")
    _warn_single_step(model, rec, samples)
    with torch.no_grad(), _seeded(seed, device):
        posts = _post_names(model, example)
    # MembraneUpdates, NeuronOperations and their per-neuron table (devprune.measure.neurons)
    return {**summarise(rec, samples, energy, posts), **membranes.summary(samples)}


def _warn_single_step(model: nn.Module, rec: _Recorder, samples: int) -> None:
    """Warn when a spiking model was measured for one time step per sample: its time loop
    lives outside it (snnTorch style), so wrap it in ``devprune.measure.TimeLoop``."""
    spiking = any(r.spiking for r in rec.activations.values())
    if not spiking or not rec.connections or getattr(model, "time_steps", None) == 1:
        return
    if all(r.rows <= samples for r in rec.connections.values()):
        warnings.warn(
            f"workload_metrics: the spiking model {type(model).__name__} ran one time step per "
            "sample; if its time loop lives outside it (snnTorch style), measure "
            "devprune.measure.TimeLoop(model) on [B, T, ...] input (or TimeLoop(model, "
            "steps=T) for a static input) to count every step",
            UserWarning, stacklevel=3,
        )


# --------------------------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------------------------
def _activation_summary(record: ActivationRecord, samples: int) -> dict[str, Any]:
    rate = record.events / record.elements if record.elements else 0.0
    summary: dict[str, Any] = {
        "spiking": record.spiking,
        "neurons": record.neurons,
        "events_per_sample": record.events / samples,
        "ActivationSparsity": 1.0 - rate,
    }
    summary["FiringRate" if record.spiking else "ActivationDensity"] = rate
    return summary


def _connection_summary(record: ConnectionRecord, samples: int, energy: EnergyModel,
                        post: str | None, activations: dict[str, ActivationRecord]
                        ) -> dict[str, Any]:
    post_record = activations.get(post) if post else None
    return {
        "input": "+".join(sorted(record.input_kinds)) or "unused",
        "input_events_per_sample": record.input_events / samples,
        "steps_per_sample": record.rows / samples,
        "Effective_MACs": record.effective_macs / samples,
        "Effective_ACs": record.effective_acs / samples,
        "Dense": record.dense / samples,
        "ANN_MACs": record.ann_macs / record.rows if record.rows else 0.0,
        "Energy_pJ": energy.energy_pj(record.effective_macs, record.effective_acs) / samples,
        "post": post,
        "post_rate": (post_record.events / post_record.elements
                      if post_record and post_record.elements else None),
    }


def summarise(rec: _Recorder, samples: int, energy: EnergyModel,
              posts: dict[str, str | None]) -> dict[str, Any]:
    connections = {
        name: _connection_summary(r, samples, energy, posts.get(name), rec.activations)
        for name, r in rec.connections.items()
    }
    activations = {name: _activation_summary(r, samples) for name, r in rec.activations.items()}
    macs = sum(c["Effective_MACs"] for c in connections.values())
    acs = sum(c["Effective_ACs"] for c in connections.values())
    ann_macs = sum(c["ANN_MACs"] for c in connections.values())
    spiking = [r for r in rec.activations.values() if r.spiking]
    events = sum(r.events for r in rec.activations.values())
    elements = sum(r.elements for r in rec.activations.values())
    spike_elements = sum(r.elements for r in spiking)
    snn_energy = energy.energy_pj(macs, acs)
    return {
        "samples": samples,
        "ActivationSparsity": 1.0 - events / elements if elements else 0.0,
        "SynapticOperations": {
            "Effective_MACs": macs,
            "Effective_ACs": acs,
            "Dense": sum(c["Dense"] for c in connections.values()),
        },
        "FiringRate": (sum(r.events for r in spiking) / spike_elements
                       if spike_elements else None),
        "ANN_MACs": ann_macs,
        "Energy_pJ": snn_energy,
        "ANN_Energy_pJ": energy.mac_pj * ann_macs,
        "EnergyModel": energy.as_dict(),
        "connections": connections,
        "activations": activations,
    }
