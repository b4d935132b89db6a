"""Compaction of snnTorch models written the snnTorch way: hidden state inside the neurons
(``init_hidden=True``), the time loop outside the model, ``(spk, mem)`` outputs, and
``snntorch.utils.reset`` between batches (defects D1 and D2 of issue 19)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from devprune.compact import compact, masked_copy
from devprune.compact.surgery import output_tensors
from devprune.errors import ModelStructureError
from devprune.masks import MaskSet
from devprune.structure import discover

snn = pytest.importorskip("snntorch")
from snntorch import utils as snn_utils  # noqa: E402


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(12, 16), snn.Leaky(beta=0.9, init_hidden=True),
        nn.Linear(16, 3), snn.Leaky(beta=0.9, init_hidden=True, output=True),
    )


def _pruned(net: nn.Module, example: torch.Tensor) -> MaskSet:
    masks = MaskSet(discover(net, example), layers=["0"])
    masks.prune_units("0", torch.arange(16) % 3 == 0)  # 6 of 16 hidden neurons die
    return masks


def _rollout(net: nn.Module, batches: list[torch.Tensor]) -> list[torch.Tensor]:
    """snnTorch's loop: reset, then step the model over the time axis of each batch."""
    results = []
    with torch.no_grad():
        for batch in batches:
            snn_utils.reset(net)
            counts = torch.zeros(batch.shape[1], 3)
            for step in batch:
                spk, _mem = net(step)
                counts += spk
            results.append(counts)
    return results


def test_compact_compares_every_tensor_of_a_tuple_output() -> None:
    net = _net()
    example = torch.rand(4, 12)
    small = compact(net, _pruned(net, example), example)  # D1: crashed on (spk, mem)
    assert small[0].out_features == 10 and small[2].in_features == 10
    spk, mem = small(example)
    assert spk.shape == mem.shape == (4, 3)


def test_a_difference_in_the_second_output_tensor_is_caught() -> None:
    from devprune.compact.surgery import check_equal_outputs

    class Pair(nn.Module):
        def __init__(self, bump: float) -> None:
            super().__init__()
            self.fc, self.bump = nn.Linear(3, 2), bump

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            y = self.fc(x)
            return y, {"mem": y + self.bump}

    ref = Pair(0.0)
    other = Pair(0.5)
    other.load_state_dict(ref.state_dict())
    check_equal_outputs(ref, ref, torch.rand(2, 3))
    with pytest.raises(ModelStructureError, match="output tensor 1"):
        check_equal_outputs(ref, other, torch.rand(2, 3))
    assert len(output_tensors((torch.zeros(1), [torch.ones(1), {"a": torch.ones(2)}]))) == 3


def test_snntorch_reset_resets_the_compacted_copy() -> None:
    net = _net()
    example = torch.rand(4, 12)
    masks = _pruned(net, example)
    reference = masked_copy(net, masks, example)
    small = compact(net, masks, example)
    torch.manual_seed(1)
    batches = [(torch.rand(6, 4, 12) * 3) for _ in range(3)]
    expected, got = _rollout(reference, batches), _rollout(small, batches)
    for want, have in zip(expected, got, strict=True):  # D2: membrane state leaked between batches
        assert torch.equal(want, have)
    # the copies are tracked by snnTorch like the original neurons
    assert any(m is small[1] for m in snn.SpikingNeuron.instances)
