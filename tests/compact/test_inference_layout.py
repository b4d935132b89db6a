"""``compact(..., unit_multiple=k)``: widths rounded up with zero units, same outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from devprune.compact import compact, compacted_masks, masked_copy
from devprune.compact.plan import MAX_PADDING_SHARE, padded_width
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
        assert more == padded_width(few, original, 8)
    expected = forward(masked_copy(model, masks), x)
    got = forward(padded, x)
    if is_spiking(model):
        assert torch.equal(got, expected)
    else:
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kept, total, multiple, width", [
    (262, 800, 16, 272),   # +10 units, 3.8 %: padded (MKL ~15 % faster at 272)
    (105, 800, 16, 112),   # +6.7 %: padded
    (124, 300, 16, 128),
    (22, 40, 16, 22),      # +45 %: kept tight (snn-small's conv2 ran no faster at 32)
    (8, 10, 16, 8),        # all 10 units would add 25 %: tight
    (120, 125, 16, 125),   # rounded to all units, +4 %
    (128, 800, 16, 128),   # already aligned
    (7, 800, 8, 7),        # +1 unit of 7 is 14 %: tight
    (57, 800, 8, 64),      # +7 of 57 is 12.3 %: padded
])
def test_padding_rule(kept, total, multiple, width) -> None:
    assert padded_width(kept, total, multiple) == width


def _hidden_multiple(model: nn.Module, masks, x) -> tuple[str, int]:
    """snn-mlp's hidden layer and a multiple that pads its tight width by one unit (a share
    the layout accepts)."""
    name = "features.layer1.fc"
    kept = compact(model, masks, x).get_submodule(name).out_features
    assert MAX_PADDING_SHARE * kept >= 1 and kept < model.get_submodule(name).out_features
    return name, kept + 1


def test_the_padding_case_exercises_padding() -> None:
    model, x = build_case("snn-mlp")
    masks = random_masks(model, x, 0.3)
    name, multiple = _hidden_multiple(model, masks, x)
    padded = compact(model, masks, x, unit_multiple=multiple)
    assert padded.get_submodule(name).out_features == multiple
    assert torch.equal(forward(padded, x), forward(masked_copy(model, masks), x))


def test_padding_units_are_dead_in_the_compacted_masks() -> None:
    model, x = build_case("snn-mlp")
    masks = random_masks(model, x, 0.3)
    name, multiple = _hidden_multiple(model, masks, x)
    padded = compact(model, masks, x, unit_multiple=multiple)
    sliced = compacted_masks(masks, padded, x)
    assert int(sliced.unit_alive(name).sum()) == int(masks.unit_alive(name).sum())
    assert padded.get_submodule(name).out_features == multiple


def test_unit_multiple_must_be_positive() -> None:
    model, x = build_case("snn-mlp")
    with pytest.raises(ValueError, match="unit_multiple"):
        compact(model, random_masks(model, x, 0.5), x, unit_multiple=0)
