"""Operation counts of one weight layer, computed by running the layer on 0/1 tensors.

For a convolution or linear layer with binary weight ``B = 1[W != 0]`` and an input count
tensor ``c`` (1 where a spike / non-zero value arrives, or the number of spikes summed by an
average pool in front), ``layer(c; B, bias=0)`` gives, at every output position, the number of
(input event, kept synapse) pairs that land there. Summing it is therefore the exact number of
synaptic operations, borders, stride, padding (including ``padding_mode``), dilation and groups
included, with no Python loop over positions. This is what NeuroBench's ``SynapticOperations``
computes too (binary copy of the layer), which keeps the two comparable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from devprune.kinds import CONNECTION_LAYERS, layer_kind
from devprune.snn.layers import is_multi_step

SUPPORTED_LAYERS = CONNECTION_LAYERS  # the layers whose synaptic operations are counted


def spatial_dims(layer: nn.Module) -> int:
    """0 for a linear layer, 1/2/3 for ConvNd (the families of :func:`kinds.layer_kind`)."""
    if layer_kind(layer) == "linear":
        return 0
    return len(layer.kernel_size)


def fold_rows(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer input as a batch of per-step samples: ``[T, B, ...]`` of a multi-step layer
    becomes ``[T*B, ...]``; an unbatched conv input gets a batch dimension."""
    if is_multi_step(layer) and x.dim() >= 2:
        x = x.flatten(0, 1)
    dims = spatial_dims(layer)
    if dims and x.dim() == dims + 1:
        x = x.unsqueeze(0)
    return x


def binary_weight(layer: nn.Module, all_ones: bool = False) -> torch.Tensor:
    weight = layer.weight.detach()
    return torch.ones_like(weight) if all_ones else (weight != 0).to(weight.dtype)


def count_ops(layer: nn.Module, counts: torch.Tensor, weight01: torch.Tensor) -> float:
    """Sum over all outputs of ``layer(counts)`` with weight ``weight01`` and no bias."""
    counts = counts.to(weight01.dtype)
    if layer_kind(layer) == "linear":
        out = F.linear(counts, weight01)
    else:
        out = layer._conv_forward(counts, weight01, None)
    return float(out.sum(dtype=torch.float64))


def ops_per_row(layer: nn.Module, row_shape: torch.Size, *, all_ones_weight: bool,
                device: torch.device) -> float:
    """Operations for one all-ones per-step sample (dense input): the ANN-equivalent count
    with ``all_ones_weight=False`` and the fully dense count with ``True``."""
    weight01 = binary_weight(layer, all_ones=all_ones_weight)
    ones = torch.ones((1, *row_shape), dtype=weight01.dtype, device=device)
    return count_ops(layer, ones, weight01)
