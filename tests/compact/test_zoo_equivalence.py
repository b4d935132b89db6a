"""Every zoo model, random unit masks at several densities: the compacted model computes
exactly what the hard-masked model computes, with only the live units' parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from devprune.compact import compact, masked_copy
from devprune.compact.summary import count_nonzero_parameters
from devprune.structure import WEIGHT_LAYERS
from tests.compact.helpers import ZOO_CASES, build_case, forward, is_spiking, random_masks

CHEAP = ["snn-mlp", "snn-small", "snn-sew-resnet", "ann-lenet-mnist", "ann-mlp",
         "ann-resnet20"]
DENSITIES = [0.75, 0.25, 0.1]


def assert_same_outputs(reference: nn.Module, small: nn.Module, x: torch.Tensor) -> None:
    expected, got = forward(reference, x), forward(small, x)
    if is_spiking(reference):
        assert torch.equal(got, expected)  # identical spike counts of every output neuron
    else:
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def assert_only_live_parameters(reference: nn.Module, small: nn.Module) -> None:
    # Each weight layer of the compacted model is exactly the masked model's weight (and bias)
    # at the kept units and columns, so no layer is wider than needed and no kept entry moved;
    # what was left out (removed columns read only zeros; removed units are dead or read by
    # nobody) cannot contribute, which the output comparison checks.
    plan = small.compaction_plan
    for name, module in small.named_modules():
        if isinstance(module, WEIGHT_LAYERS):
            full = reference.get_submodule(name)
            rows, cols = plan.keep_out[name], plan.keep_in[name]
            expected = full.weight[rows] if cols is None else full.weight[rows][:, cols]
            torch.testing.assert_close(module.weight, expected, rtol=0, atol=0)
            if module.bias is not None:
                torch.testing.assert_close(module.bias, full.bias[rows], rtol=0, atol=0)
    assert count_nonzero_parameters(small) <= count_nonzero_parameters(reference)


@pytest.mark.parametrize("density", DENSITIES)
@pytest.mark.parametrize("name", CHEAP)
def test_compacted_equals_masked_cheap_models(name: str, density: float) -> None:
    model, x = build_case(name)
    masks = random_masks(model, x, density, seed=int(density * 100))
    small = compact(model, masks, x, verify=False)  # compared below
    reference = masked_copy(model, masks)
    assert_same_outputs(reference, small, x)
    assert_only_live_parameters(reference, small)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())


# ann-resnet56 is ann-resnet20's code with 9 blocks per stage: covered by resnet20's cases.
@pytest.mark.parametrize("name", sorted(set(ZOO_CASES) - set(CHEAP) - {"ann-resnet56"}))
def test_compacted_equals_masked_large_models(name: str) -> None:
    model, x = build_case(name)
    masks = random_masks(model, x, 0.5)
    small = compact(model, masks, x, verify=False)  # compared below
    reference = masked_copy(model, masks)
    assert_same_outputs(reference, small, x)
    assert_only_live_parameters(reference, small)


def test_hidden_spike_trains_are_identical_on_kept_units() -> None:
    """Beyond the readout: every kept neuron of an SNN fires exactly as in the masked model."""
    model, x = build_case("snn-small")
    masks = random_masks(model, x, 0.5)
    reference, small = masked_copy(model, masks), compact(model, masks, x)
    plan = small.compaction_plan
    spikes: dict[str, dict[str, torch.Tensor]] = {"ref": {}, "small": {}}
    for tag, net in (("ref", reference), ("small", small)):
        for lname in plan.keep_out:
            post = masks.structure[lname].post_name
            net.get_submodule(post).register_forward_hook(
                lambda _m, _i, out, tag=tag, lname=lname: spikes[tag].__setitem__(lname, out))
        forward(net, x)
    for lname, kept in plan.keep_out.items():
        assert torch.equal(spikes["ref"][lname].index_select(2, kept), spikes["small"][lname])
