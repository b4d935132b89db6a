"""The coupling rules on small hand-made models: flatten blocks, residual groups, input-tied
groups, dead units that are not silent."""

from __future__ import annotations

import torch
from torch import nn

from devprune.compact import compact, masked_copy
from devprune.masks import MaskSet
from devprune.structure import discover
from tests.compact.helpers import forward, randomise_batchnorm
from tests.core.models import ChainSNN, TinyResNet


def test_dead_conv_channel_removes_its_flattened_block() -> None:
    model, x = ChainSNN().eval(), torch.rand(2, 1, 8, 8)
    masks = MaskSet(discover(model))
    masks.prune_units("c2", torch.tensor([1, 4]))
    small = compact(model, masks, x)
    assert small.c2.out_channels == 4 and small.b2.num_features == 4
    assert small.f1.in_features == 16  # 2 channels x 2x2 columns gone
    kept = torch.tensor([c for c in range(24) if c // 4 not in (1, 4)])
    assert torch.equal(small.f1.weight, model.f1.weight[:, kept])
    assert torch.equal(forward(small, x), forward(masked_copy(model, masks), x))


def test_residual_channel_goes_only_when_dead_in_every_member() -> None:
    model, x = TinyResNet().eval(), torch.rand(2, 3, 8, 8)
    randomise_batchnorm(model)
    masks = MaskSet(discover(model))
    masks.prune_units("b3.conv2", torch.tensor([3, 5]))
    masks.prune_units("b2.conv2", torch.tensor([3]))
    masks.prune_units("b2.shortcut.0", torch.tensor([3]))
    small = compact(model, masks, x)
    assert small.b3.conv2.out_channels == 15  # channel 3 only: 5 lives on in b2
    assert small.b2.shortcut[1].num_features == 15 and small.fc.in_features == 15
    torch.testing.assert_close(forward(small, x), forward(masked_copy(model, masks), x))


class InputResidual(nn.Module):
    """``x + conv(x)``: the conv's channels are tied to the model input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 4, 1)
        self.out = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.head(x + self.conv(x)))
        return self.out(y.mean((2, 3)))


def test_group_tied_to_the_input_is_left_alone() -> None:
    model, x = InputResidual().eval(), torch.rand(2, 3, 6, 6)
    masks = MaskSet(discover(model))
    masks.prune_units("conv", torch.tensor([0, 1, 2]))
    masks.prune_units("head", torch.tensor([2]))
    small = compact(model, masks, x)
    assert small.conv.out_channels == 3 and small.head.in_channels == 3
    assert small.head.out_channels == 3 and small.out.in_features == 3
    torch.testing.assert_close(forward(small, x), forward(masked_copy(model, masks), x))


class NoAffineSigmoid(nn.Module):
    """conv-BN(no affine)-ReLU and linear-sigmoid: dead units that still emit constants."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6, affine=False)
        self.fc, self.fc_out = nn.Linear(6, 5), nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x))).mean((2, 3))
        return self.fc_out(torch.sigmoid(self.fc(y)))


def _stale_bn_model() -> tuple[nn.Module, torch.Tensor]:
    model, x = NoAffineSigmoid().eval(), torch.rand(2, 1, 6, 6)
    with torch.no_grad():  # conv unit 1 gets a stale running mean: -mean > 0 once it is dead
        model.bn.running_mean.copy_(torch.tensor([0.0, -1.0, 0.0, 0.0, 0.0, 0.0]))
    return model, x


def test_dead_units_that_are_not_silent_stay_while_an_unmasked_layer_reads_them() -> None:
    model, x = _stale_bn_model()
    conv_only = MaskSet(discover(model), ["conv"])  # fc, unmasked, reads every conv channel
    conv_only.prune_units("conv", torch.tensor([0, 1]))
    small = compact(model, conv_only, x)
    assert small.conv.out_channels == 5 and small.bn.running_mean.numel() == 5
    torch.testing.assert_close(forward(small, x), forward(masked_copy(model, conv_only), x))
    fc_only = MaskSet(discover(model), ["fc"])  # fc_out, unmasked, reads fc unit 4
    fc_only.prune_units("fc", torch.tensor([4]))  # sigmoid(0) = 0.5: must stay
    small = compact(model, fc_only, x)
    assert small.fc.out_features == 5
    torch.testing.assert_close(forward(small, x), forward(masked_copy(model, fc_only), x))


def test_dead_units_whose_readers_are_masked_go_even_when_not_silent() -> None:
    # hard masks cut a dead unit's columns in every masked reader, so nothing reads what the
    # dead, loud conv unit 1 emits: it goes (unread), the outputs unchanged. fc unit 4 stays:
    # the output layer fc_out is not masked and reads it
    model, x = _stale_bn_model()
    masks = MaskSet(discover(model))
    assert "fc_out" not in masks
    masks.prune_units("conv", torch.tensor([0, 1]))
    masks.prune_units("fc", torch.tensor([4]))
    small = compact(model, masks, x)
    assert small.conv.out_channels == 4 and small.fc.out_features == 5
    torch.testing.assert_close(forward(small, x), forward(masked_copy(model, masks), x))


def test_units_nobody_reads_go_with_their_kept_weights() -> None:
    # every outgoing entry of conv channel 2 pruned (synapses, not the unit): channel 2 is
    # unread, so it goes although its own filter is kept; fc's 5 other columns stay
    model, x = _stale_bn_model()
    masks = MaskSet(discover(model))
    remove = torch.zeros(5, 6, dtype=torch.bool)
    remove[:, 2] = True
    masks.prune_synapses("fc", remove)
    small = compact(model, masks, x)
    assert small.conv.out_channels == 5 and small.fc.in_features == 5
    torch.testing.assert_close(forward(small, x), forward(masked_copy(model, masks), x))
