"""Shared helpers of the compaction tests: zoo cases, random masks, exact forward passes."""

from __future__ import annotations

import torch
from torch import nn

from devprune.masks import MaskSet
from devprune.models import build_model
from devprune.structure import discover

# Small inputs / widths keep every zoo model cheap on a shared 2-core CPU.
ZOO_CASES: dict[str, dict] = {
    "snn-mlp": {"in_shape": (1, 10, 10), "time_steps": 3, "hidden": (40,)},
    "snn-small": {"in_shape": (1, 12, 12), "time_steps": 3},
    "snn-braincog-cifar": {"in_shape": (3, 8, 8), "time_steps": 2, "hidden": 32},
    "snn-sew-resnet": {"in_shape": (3, 8, 8), "time_steps": 2, "widths": (8, 16, 16)},
    "ann-lenet-mnist": {"in_shape": (1, 28, 28)},
    "ann-mlp": {"in_shape": (1, 10, 10), "hidden": (40, 30)},
    "ann-vgg16-dpap": {"in_shape": (3, 8, 8), "hidden": 32},
    "ann-resnet20": {"in_shape": (3, 8, 8)},
    "ann-resnet56": {"in_shape": (3, 8, 8)},
}


def build_case(name: str, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """A zoo model in eval mode with random BN statistics (as after training) and a batch."""
    kwargs = dict(ZOO_CASES[name])
    in_shape = kwargs.pop("in_shape")
    torch.manual_seed(seed)
    model = build_model(name, in_shape=in_shape, num_classes=5, **kwargs).eval()
    randomise_batchnorm(model)
    return model, torch.rand(2, *in_shape)


@torch.no_grad()
def randomise_batchnorm(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            if module.affine:
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)


def random_masks(model: nn.Module, example: torch.Tensor, unit_density: float,
                 synapse_density: float = 0.7, seed: int = 0) -> MaskSet:
    """Kill units at random (keeping ``unit_density``) and prune synapses of the rest."""
    generator = torch.Generator().manual_seed(seed)
    masks = MaskSet(discover(model, example))
    for name in masks.names():
        layer = masks.structure[name]
        dead = torch.rand(layer.num_units, generator=generator) >= unit_density
        masks.prune_units(name, dead)
        cut = torch.rand(masks[name].shape, generator=generator) >= synapse_density
        masks.prune_synapses(name, cut)
    return masks


def forward(model: nn.Module, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Eval-mode output with a fixed random state (Bernoulli encoders draw random numbers)."""
    model.eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model(x)


def is_spiking(model: nn.Module) -> bool:
    return bool(getattr(model, "is_spiking", False))
