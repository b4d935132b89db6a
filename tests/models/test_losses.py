from __future__ import annotations

import pytest
import torch

from devprune.errors import ConfigError, LayoutError
from devprune.models.losses import get_loss, rate_mse_loss


def test_rate_mse_is_mse_to_one_hot():
    rates = torch.tensor([[0.5, 0.0, 1.0], [0.0, 0.25, 0.0]])
    target = torch.tensor([0, 1])
    # squared errors: (0.25, 0, 1) and (0, 0.5625, 0) -> mean over 6
    assert rate_mse_loss(rates, target).item() == pytest.approx(1.8125 / 6)


def test_get_loss_by_name():
    assert get_loss("mse") is rate_mse_loss
    logits = torch.tensor([[2.0, 0.0]])
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([0]))
    assert get_loss("cross_entropy")(logits, torch.tensor([0])) == expected
    with pytest.raises(ConfigError, match="loss"):
        get_loss("hinge")


def test_loss_rejects_wrong_layout():
    with pytest.raises(LayoutError, match="classes"):
        rate_mse_loss(torch.zeros(4, 2, 10), torch.zeros(4, dtype=torch.long))
