"""Checkpoints: round trip, exact resume, refusal of corrupt or foreign checkpoints."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from devprune.errors import CheckpointError, ConfigError, TrainingDivergedError
from devprune.runner import checkpoint as ckpt
from devprune.runner.config import config_from_dict, load_config
from devprune.runner.metrics import read_metrics
from devprune.runner.train import train

TIMING_KEYS = {"epoch_time_s", "wall_time_s"}


def _quiet_train(cfg: Any, out: Path, **kwargs: Any) -> dict[str, Any]:
    return train(cfg, out, quiet=True, log=lambda _: None, **kwargs)


def _without_timing(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return ckpt.load_checkpoint(path)["model"]


def test_rng_capture_restores_every_generator() -> None:
    state = ckpt.capture_rng()
    first = (random.random(), float(np.random.rand()), float(torch.rand(())))
    ckpt.restore_rng(state)
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == first


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    from devprune.pruning.base import Pruner

    payload = ckpt.build_payload(epochs_done=2, model=model, optimizer=optimizer,
                                 scheduler=scheduler, pruner=Pruner(model), config={"a": 1},
                                 config_hash="abc", best={"epoch": 1})
    ckpt.save_checkpoint(tmp_path / "x.pt", payload)
    loaded = ckpt.load_checkpoint(tmp_path / "x.pt")
    assert loaded["epochs_done"] == 2 and loaded["best"] == {"epoch": 1}
    for key, value in model.state_dict().items():
        assert torch.equal(loaded["model"][key], value)
    assert loaded["optimizer"]["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    assert loaded["pruner"] == {"method": "none", "version": 1}


@pytest.mark.parametrize("method", ["none", "shrink"])
def test_resume_reproduces_the_uninterrupted_run_exactly(
    tmp_path: Path, tiny_yaml: Path, shrink_method: str, method: str
) -> None:
    overrides = [f"prune.method={method}", "train.schedule=cosine", "train.warmup_epochs=1",
                 "data.augment=false"]
    cfg = load_config(str(tiny_yaml), overrides)
    _quiet_train(cfg, tmp_path / "straight")
    _quiet_train(cfg, tmp_path / "split", stop_after=1)
    assert not (tmp_path / "split" / "summary.json").exists()
    assert len(read_metrics(tmp_path / "split" / "metrics.jsonl")) == 1
    _quiet_train(cfg, tmp_path / "split", resume=True)

    straight = read_metrics(tmp_path / "straight" / "metrics.jsonl")
    split = read_metrics(tmp_path / "split" / "metrics.jsonl")
    assert len(straight) == 3
    assert _without_timing(split) == _without_timing(straight)
    a, b = _weights(tmp_path / "straight" / "last.pt"), _weights(tmp_path / "split" / "last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    if method == "shrink":  # the pruner really pruned, and its state travelled
        assert straight[-1]["connectivity"] < 0.7
        assert straight[-1]["pruning"]["shrink"]
        pruner = ckpt.load_checkpoint(tmp_path / "split" / "last.pt")["pruner"]
        assert pruner["steps"] == 2 and pruner["batches"] == 3 * 5  # 240 samples in batches of 50


def test_resume_refuses_a_different_configuration(tmp_path: Path, tiny_yaml: Path) -> None:
    _quiet_train(load_config(str(tiny_yaml)), tmp_path / "run", stop_after=1)
    changed = load_config(str(tiny_yaml), ["train.lr=0.5", "model.kwargs.hidden=[8]"])
    with pytest.raises(CheckpointError) as info:
        _quiet_train(changed, tmp_path / "run", resume=True)
    message = str(info.value)
    assert "train.lr: 0.01 -> 0.5" in message and "model.kwargs.hidden" in message
    assert "--resume" in message and "another --out" in message
    # Longer training is not a different experiment: it resumes.
    longer = load_config(str(tiny_yaml), ["train.epochs=4"])
    assert _quiet_train(longer, tmp_path / "run", resume=True)["epochs"] == 4


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign"])
def test_corrupt_checkpoints_are_refused(tmp_path: Path, tiny_yaml: Path, damage: str) -> None:
    cfg = load_config(str(tiny_yaml))
    _quiet_train(cfg, tmp_path / "run", stop_after=1)
    last = tmp_path / "run" / "last.pt"
    if damage == "truncate":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    elif damage == "garbage":
        last.write_bytes(b"not a checkpoint at all")
    else:
        torch.save({"state_dict": {}}, last)
    expected = "not a devprune run checkpoint" if damage == "foreign" else "corrupt or truncated"
    with pytest.raises(CheckpointError, match=expected):
        _quiet_train(cfg, tmp_path / "run", resume=True)


def test_weights_of_another_model_are_refused(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        ckpt.load_model_state(model, torch.nn.Linear(4, 2).state_dict(), tmp_path / "x.pt")


def test_run_directory_is_not_overwritten(tmp_path: Path, tiny_yaml: Path) -> None:
    cfg = load_config(str(tiny_yaml), ["train.epochs=1"])
    _quiet_train(cfg, tmp_path / "run")
    with pytest.raises(ConfigError, match="already holds a run"):
        _quiet_train(cfg, tmp_path / "run")
    with pytest.raises(CheckpointError, match=r"holds no last\.pt"):
        _quiet_train(cfg, tmp_path / "empty", resume=True)


def test_nan_loss_stops_with_epoch_batch_and_advice(
    tmp_path: Path, tiny_raw: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import devprune.models

    def nan_after_two_batches() -> Any:
        calls = {"n": 0}

        def loss(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            calls["n"] += 1
            value = outputs.float().pow(2).mean()
            return value * float("nan") if calls["n"] == 3 else value

        return loss

    monkeypatch.setattr(devprune.models, "get_loss", lambda name: nan_after_two_batches())
    with pytest.raises(TrainingDivergedError) as info:
        _quiet_train(config_from_dict(tiny_raw), tmp_path / "run")
    message = str(info.value)
    assert "epoch 1, batch 3" in message and "train.lr" in message
