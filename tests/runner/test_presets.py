"""Every shipped preset validates, builds its model and runs one batch of its dataset's shape."""

from __future__ import annotations

import pytest
import torch

from devprune.runner.config import load_config
from devprune.runner.loop import build_optimizer, build_scheduler, lr_at
from devprune.runner.presets import list_presets

PRESETS = sorted(list_presets())


def test_the_dense_presets_ship() -> None:
    for name in ("mnist-mlp-dense-quick", "fashion-mlp-dense-quick", "mnist-snn-small-dense",
                 "cifar10-snn-braincog-dense", "cifar10-vgg16-dense", "mnist-lenet-dense"):
        assert name in PRESETS


# Above this size (VGG16, the BrainCog CIFAR net) one forward pass checks the preset; the
# full training step is exercised on the smaller networks (tens of seconds saved per preset).
LARGE_MODEL_PARAMS = 5_000_000


@pytest.mark.parametrize("name", PRESETS)
def test_preset_builds_and_runs_one_batch(name: str) -> None:
    from devprune.data import dataset_info
    from devprune.models import build_model, get_loss
    from devprune.pruning.base import build_pruner

    cfg = load_config(name)
    assert list_presets()[name], "every preset needs a one-line description"
    info = dataset_info(cfg.data.name)
    torch.manual_seed(0)
    model = build_model(cfg.model.name, in_shape=info.in_shape, num_classes=info.num_classes,
                        time_steps=cfg.model.time_steps, **cfg.model.kwargs)
    large = sum(p.numel() for p in model.parameters()) > LARGE_MODEL_PARAMS
    inputs = torch.rand(1, *info.in_shape)
    if large:
        with torch.no_grad():
            assert model(inputs).shape == (1, info.num_classes)
        return
    pruner = build_pruner(cfg.prune.method, model, inputs, cfg.method_config())
    optimizer = build_optimizer(model, cfg.train)
    pruner.bind_optimizer(optimizer)
    pruner.on_batch_start()
    outputs = model(inputs)
    assert outputs.shape == (1, info.num_classes)
    loss = get_loss(cfg.train.loss)(outputs, torch.tensor([info.num_classes - 1]))
    loss.backward()
    pruner.on_after_backward()
    optimizer.step()
    pruner.on_after_step()
    pruner.on_batch_end()
    assert torch.isfinite(loss)


def test_reference_schedules_match_the_papers_code() -> None:
    braincog = load_config("cifar10-snn-braincog-dense").train
    assert lr_at(0, braincog) == pytest.approx(1e-6)
    assert lr_at(5, braincog) == pytest.approx(1e-5 + (2.44e-4 - 1e-5) * 0.5 *
                                               (1 + torch.cos(torch.tensor(torch.pi * 5 / 300))
                                                .item()))
    vgg = load_config("cifar10-vgg16-dense").train  # 0.001, then 0.01, x0.2 at 60/120/160
    assert [lr_at(e, vgg) for e in (0, 1, 59, 60, 120, 160)] == pytest.approx(
        [0.001, 0.01, 0.01, 0.002, 4e-4, 8e-5])
    small = load_config("mnist-snn-small-dense").train  # x0.1 at every multiple of 40
    assert [lr_at(e, small) for e in (0, 39, 40, 80, 149)] == pytest.approx(
        [1e-3, 1e-3, 1e-4, 1e-5, 1e-6])


def test_scheduler_follows_lr_at() -> None:
    cfg = load_config("cifar10-vgg16-dense").train
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    seen = []
    for _ in range(3):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.001, 0.01, 0.01])
    assert optimizer.param_groups[0]["nesterov"] is True
