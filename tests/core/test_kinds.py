"""devprune.kinds is the one table of layer kinds that discovery, masks and measurement read."""

from __future__ import annotations

import torch
from torch import nn

from devprune import kinds, structure
from devprune.compact import record
from devprune.export import nir_graph
from devprune.measure import synops, workload
from devprune.snn import layers as ms


def test_discovery_and_measurement_read_the_one_table() -> None:
    assert structure.WEIGHT_LAYERS is kinds.WEIGHT_LAYERS
    assert structure.NORM_LAYERS is kinds.NORM_LAYERS
    assert structure.ACTIVATION_MODULES is kinds.ACTIVATION_MODULES
    assert synops.SUPPORTED_LAYERS is kinds.CONNECTION_LAYERS
    assert workload.AVG_POOLS is kinds.AVG_POOLS
    assert set(kinds.WEIGHT_LAYERS) <= set(kinds.CONNECTION_LAYERS)


def test_compaction_record_and_export_read_the_one_table() -> None:
    assert record.SIZE_ATTRIBUTES is kinds.SIZE_ATTRIBUTES
    assert nir_graph.NORM_LAYERS is kinds.NORM_LAYERS
    assert nir_graph.MAX_POOLS is kinds.MAX_POOLS
    assert nir_graph.EVAL_IDENTITY_MODULES is kinds.EVAL_IDENTITY_MODULES


def test_avg_pool_dims() -> None:
    assert kinds.avg_pool_dims(ms.AvgPool2d(2)) == 2  # devprune's multi-step subclass too
    assert kinds.avg_pool_dims(nn.AdaptiveAvgPool1d(1)) == 1
    assert kinds.avg_pool_dims(nn.MaxPool2d(2)) is None


def test_layer_kind_and_unit_counts() -> None:
    assert kinds.layer_kind(nn.Linear(3, 4)) == "linear"
    assert kinds.layer_kind(nn.Conv2d(3, 4, 3)) == "conv"
    assert kinds.unit_counts(nn.Linear(3, 4)) == (4, 3)
    assert kinds.unit_counts(nn.Conv1d(5, 6, 3)) == (6, 5)


def test_hard_mask_rule_names_the_bias_and_the_coupled_norm_affine() -> None:
    conv, norm = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
    assert [id(p) for p in kinds.unit_tensors(conv, norm)] == [
        id(conv.bias), id(norm.weight), id(norm.bias)]
    assert kinds.unit_tensors(nn.Linear(3, 4, bias=False), None) == []
    plain = nn.BatchNorm2d(4, affine=False)
    assert [id(p) for p in kinds.unit_tensors(conv, plain)] == [id(conv.bias)]
    assert all(isinstance(p, torch.nn.Parameter) for p in kinds.unit_tensors(conv, norm))
