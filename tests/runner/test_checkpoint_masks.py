"""Masks are stored once in a run checkpoint (in the pruner's state); checkpoints written
with a second copy at payload["masks"] still read (tests/fixtures/run_v1 is one)."""

from __future__ import annotations

import torch

from devprune.pruning import build_pruner
from devprune.runner import checkpoint as ckpt
from tests.core.models import ChainSNN


def test_masks_are_stored_once_in_the_pruner_state() -> None:
    model = ChainSNN()
    pruner = build_pruner("dpap", model, None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    payload = ckpt.build_payload(
        epochs_done=1, model=model, optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.StepLR(optimizer, 1), pruner=pruner,
        config={}, config_hash="abc", best={})
    assert "masks" not in payload
    assert ckpt.checkpoint_masks(payload) is payload["pruner"]["masks"]
    assert set(payload["pruner"]["masks"]["masks"]) == set(pruner.masks.state_dict()["masks"])


def test_masks_of_older_checkpoints_are_read_from_either_place() -> None:
    masks = {"mode": "default", "masks": {"fc": torch.ones(2, 2, dtype=torch.bool)}}
    assert ckpt.checkpoint_masks({"pruner": {"method": "dpap", "masks": masks},
                                  "masks": masks}) is masks  # both copies (before #18)
    assert ckpt.checkpoint_masks({"pruner": {"method": "none"}, "masks": None}) is None
    assert ckpt.checkpoint_masks({"pruner": {"method": "x"}, "masks": masks}) is masks
