"""Static metrics: counts by hand on tiny models, masks, dead units, footprint."""

from __future__ import annotations

import torch
from torch import nn

from devprune.masks import MaskSet
from devprune.measure import static_metrics
from devprune.structure import discover
from tests.core.models import ChainSNN, TinyResNet


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def test_dense_counts_and_footprint() -> None:
    model = mlp()
    result = static_metrics(model)
    assert result["ParameterCount"] == 4 * 3 + 3 + 3 * 2 + 2
    assert result["Footprint"] == 23 * 4
    assert result["Footprint_deployable"] == 23 * 4
    assert result["Connectivity"] == 1.0  # prunable layers: the hidden layer only
    assert result["ConnectionSparsity"] == 0.0
    assert result["UnitsAlive"] == {"alive": 3, "total": 3, "alive_all": 5, "total_all": 5}
    assert result["layers"]["2"]["is_output"] and not result["layers"]["2"]["prunable"]


def test_zeros_in_weights_without_masks() -> None:
    model = mlp()
    with torch.no_grad():
        model[0].weight[0, :2] = 0.0  # 2 of 12 hidden synapses
        model[2].weight[1, 0] = 0.0  # 1 of 6 output synapses
    result = static_metrics(model)
    assert result["layers"]["0"]["weights_nonzero"] == 10
    assert result["Connectivity"] == 10 / 12
    assert result["Connectivity_all"] == 15 / 18
    assert result["ConnectionSparsity"] == 3 / 18
    assert result["ParameterCount_nonzero"] == 23 - 3
    assert result["UnitsAlive"]["alive"] == 3


def test_pruned_unit_removes_its_row_column_and_footprint() -> None:
    model = mlp()
    masks = MaskSet(discover(model))
    masks.prune_units("0", torch.tensor([1]))
    masks.apply()  # hard mode: row 1 and its bias
    result = static_metrics(model, masks)
    hidden, out = result["layers"]["0"], result["layers"]["2"]
    assert (hidden["units_alive"], hidden["units_dead_no_input"]) == (2, 1)
    assert hidden["weights_nonzero"] == 8
    # The output layer has no mask, but hard mode zeroes its column 1 too: it reads a dead unit.
    assert (out["weights_nonzero"], out["weights_effective"]) == (4, 4)
    assert result["Connectivity"] == 8 / 12
    # Deployable: fc1 2x4 + 2 bias, fc2 2x2 + 2 bias = 16 floats.
    assert result["Footprint_deployable"] == 16 * 4
    assert result["Footprint"] == 23 * 4  # NeuroBench's Footprint: the stored tensors
    assert result["masks"] == "default"
    assert hidden["masked_but_nonzero"] == 0


def test_mask_counts_even_before_weights_are_zeroed() -> None:
    model = mlp()
    masks = MaskSet(discover(model), mode="reference")
    masks.prune_synapses("0", torch.tensor([[True, False, False, False]] * 3))
    result = static_metrics(model, masks)  # weights not yet multiplied by the mask
    assert result["layers"]["0"]["weights_nonzero"] == 9
    assert result["layers"]["0"]["masked_but_nonzero"] == 3


def test_units_dead_for_lack_of_inputs_or_outputs() -> None:
    model = ChainSNN()
    masks = MaskSet(discover(model))
    # c1 filter 0 pruned: c2 loses that input channel (not a dead c2 unit).
    masks.prune_units("c1", torch.tensor([0]))
    # every c2 kernel reading c1 channel 1 removed: c1 filter 1 keeps its inputs but
    # nothing reads it any more -> dead for lack of outputs.
    remove = torch.zeros(6, 4, dtype=torch.bool)
    remove[:, 1] = True
    masks.prune_synapses("c2", remove)
    # f1 neuron 2 loses every input column: dead for lack of inputs.
    masks.prune_units("f1", torch.tensor([2]))
    masks.apply()
    layers = static_metrics(model, masks)["layers"]
    assert (layers["c1"]["units_alive"], layers["c1"]["units_dead_no_input"],
            layers["c1"]["units_dead_no_output"]) == (2, 1, 1)
    assert layers["c2"]["units_alive"] == 6
    assert layers["f1"]["units_alive"] == 4
    # c2's effective synapses: 6 filters x 2 live input channels x 9.
    assert layers["c2"]["weights_effective"] == 6 * 2 * 9
    # f2 column 2 is dead (f1 neuron 2): 3 x 4 effective synapses.
    assert layers["f2"]["weights_effective"] == 12


def test_dead_filter_propagates_through_flatten_blocks() -> None:
    model = ChainSNN()
    masks = MaskSet(discover(model))
    remove = torch.zeros(5, 24, dtype=torch.bool)
    remove[:, 0:4] = True  # the 4 = 2x2 columns of c2 filter 0 after flatten
    masks.prune_synapses("f1", remove)
    masks.apply()
    result = static_metrics(model, masks)
    assert result["layers"]["c2"]["units_dead_no_output"] == 1
    # Deployable footprint drops c2 filter 0: 4*9 weights + bias + BN (2 affine + 2 stats),
    # and the f1 columns it fed (already zero but stored): 5 * 4.
    dense = static_metrics(ChainSNN())["Footprint_deployable"]
    assert dense - result["Footprint_deployable"] == 4 * (4 * 9 + 1 + 4 + 5 * 4)


def test_residual_channels_are_removable_only_when_dead_in_every_member() -> None:
    model = TinyResNet()
    structure = discover(model)
    masks = MaskSet(structure)
    group = structure["b2.conv2"].residual_group
    assert group is not None
    masks.prune_units("b2.conv2", torch.tensor([0]))
    masks.apply()
    one_member = static_metrics(model, masks)
    assert one_member["layers"]["b2.conv2"]["units_alive"] == 15
    members = structure.residual_groups[group]
    for name in members:
        if name in masks:
            masks.prune_units(name, torch.tensor([0]))
    masks.apply()
    all_members = static_metrics(model, masks)
    assert all_members["Footprint_deployable"] < one_member["Footprint_deployable"]


def test_torch_prune_reparametrisation_counts_the_effective_weight() -> None:
    from torch.nn.utils import prune

    model = mlp()
    prune.l1_unstructured(model[0], "weight", amount=6)
    result = static_metrics(model)
    assert result["layers"]["0"]["weights_nonzero"] == 6
    assert result["ParameterCount_nonzero"] == 23 - 6
    # NeuroBench's Footprint counts weight_orig and the weight_mask buffer; deployable not.
    assert result["Footprint"] == 23 * 4 + 12 * 4
    assert result["Footprint_deployable"] == 23 * 4
