"""Masked and compacted models give the same measurements (the contract with compact)."""

from __future__ import annotations

import pytest
import torch

from devprune.masks import MaskSet
from devprune.measure import static_metrics, workload_metrics
from devprune.models import build_model
from devprune.structure import discover

compact_module = pytest.importorskip("devprune.compact")


@pytest.mark.parametrize("name", ["snn-small", "snn-mlp"])
def test_compacted_zoo_model_measures_like_the_masked_one(name: str) -> None:
    torch.manual_seed(0)
    kwargs = {"channels": (6, 8), "hidden": 32} if name == "snn-small" else {"hidden": (40,)}
    model = build_model(name, in_shape=(1, 12, 12), num_classes=4, time_steps=3, **kwargs)
    example = torch.rand(4, 1, 12, 12)
    masks = MaskSet(discover(model, example))
    for layer in masks.names():  # half the units of every prunable layer
        units = masks[layer].shape[0]
        masks.prune_units(layer, torch.randperm(units)[: units // 2])
    masks.apply()
    compacted = compact_module.compact(model, masks, example)

    masked_static, small_static = static_metrics(model, masks), static_metrics(compacted)
    for layer, record in masked_static["layers"].items():
        assert small_static["layers"][layer]["units_alive"] == record["units_alive"]
        assert small_static["layers"][layer]["weights_nonzero"] == record["weights_effective"]
    # What a deployment stores is what the compacted model holds.
    assert small_static["Footprint"] == masked_static["Footprint_deployable"]

    batches = [torch.rand(5, 1, 12, 12), torch.rand(3, 1, 12, 12)]
    masked_work, small_work = workload_metrics(model, batches), workload_metrics(compacted, batches)
    for key in ("Effective_MACs", "Effective_ACs"):
        assert small_work["SynapticOperations"][key] == masked_work["SynapticOperations"][key]
    assert small_work["Energy_pJ"] == pytest.approx(masked_work["Energy_pJ"])
    # Spike counts per layer are equal; rates differ only by the removed (silent) neurons.
    for layer, record in masked_work["activations"].items():
        assert small_work["activations"][layer]["events_per_sample"] == record["events_per_sample"]
    assert small_work["SynapticOperations"]["Dense"] < masked_work["SynapticOperations"]["Dense"]
