"""``compact(..., unit_multiple=k)``: widths rounded up with zero units, same outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from devprune.compact import compact, compacted_masks, masked_copy
from devprune.structure import WEIGHT_LAYERS
from tests.compact.helpers import build_case, forward, is_spiking, random_masks

CASES = ["snn-mlp", "snn-small", "snn-sew-resnet", "ann-mlp", "ann-resnet20"]


def widths(model: nn.Module) -> list[int]:
    return [m.weight.shape[0] for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]


@pytest.mark.parametrize("name", CASES)
def test_padded_compaction_gives_the_masked_outputs(name: str) -> None:
    model, x = build_case(name)
    masks = random_masks(model, x, 0.3)
    tight = compact(model, masks, x)
    padded = compact(model, masks, x, unit_multiple=8)
    full = widths(model)
    for original, few, more in zip(full, widths(tight), widths(padded), strict=True):
        assert more == min(-(-few // 8) * 8, original)  # rounded up, never past the original
    assert widths(padded) != widths(tight)  # the case exercises the padding
    expected = forward(masked_copy(model, masks), x)
    got = forward(padded, x)
    if is_spiking(model):
        assert torch.equal(got, expected)
    else:
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_padding_units_are_dead_in_the_compacted_masks() -> None:
    model, x = build_case("snn-mlp")
    masks = random_masks(model, x, 0.3)
    padded = compact(model, masks, x, unit_multiple=16)
    sliced = compacted_masks(masks, padded, x)
    name = "features.layer1.fc"
    assert int(sliced.unit_alive(name).sum()) == int(masks.unit_alive(name).sum())
    assert padded.get_submodule(name).out_features % 16 == 0


def test_unit_multiple_must_be_positive() -> None:
    model, x = build_case("snn-mlp")
    with pytest.raises(ValueError, match="unit_multiple"):
        compact(model, random_masks(model, x, 0.5), x, unit_multiple=0)
