"""Save/load, re-compaction, nothing pruned, CSR layers and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from devprune.compact import (
    CSRLinear,
    architecture_record,
    compact,
    compacted_masks,
    load_compacted,
    masked_copy,
    rebuild,
    sparsify_linears,
)
from devprune.errors import CheckpointError
from devprune.masks import MaskSet
from devprune.models import build_model
from devprune.structure import discover
from tests.compact.helpers import ZOO_CASES, build_case, forward, random_masks

ROUNDTRIP = ["snn-small", "snn-sew-resnet", "ann-resnet20"]


@pytest.mark.parametrize("name", ROUNDTRIP)
def test_whole_module_pickle_roundtrip(name: str, tmp_path: Path) -> None:
    model, x = build_case(name)
    small = compact(model, random_masks(model, x, 0.5), x)
    torch.save(small, tmp_path / "small.pt")
    loaded = torch.load(tmp_path / "small.pt", weights_only=False)
    assert type(loaded) is type(small)
    assert torch.equal(forward(loaded, x), forward(small, x))


@pytest.mark.parametrize("name", ROUNDTRIP)
def test_record_rebuilds_the_compacted_model_from_a_fresh_build(name: str) -> None:
    model, x = build_case(name)
    small = compact(model, random_masks(model, x, 0.4), x)
    record = json.loads(json.dumps(architecture_record(small)))  # survives JSON
    kwargs = dict(ZOO_CASES[name])
    fresh = build_model(name, in_shape=kwargs.pop("in_shape"), num_classes=5, **kwargs)
    rebuilt = rebuild(fresh, record)
    rebuilt.load_state_dict(small.state_dict())
    assert torch.equal(forward(rebuilt, x), forward(small, x))
    for (n1, m1), (n2, m2) in zip(rebuilt.named_modules(), small.named_modules(), strict=True):
        assert n1 == n2 and type(m1) is type(m2)  # same classes, multi-step stays multi-step


def test_record_refuses_another_architecture() -> None:
    model, x = build_case("snn-small")
    record = architecture_record(compact(model, random_masks(model, x, 0.5), x))
    other = build_model("ann-lenet-mnist", in_shape=(1, 28, 28), num_classes=5)
    with pytest.raises(CheckpointError, match="base model"):
        rebuild(other, record)


@pytest.mark.parametrize("name", ["snn-small", "ann-resnet20"])
def test_compacting_a_compacted_model_again_is_a_no_op(name: str) -> None:
    model, x = build_case(name)
    masks = random_masks(model, x, 0.3)
    small = compact(model, masks, x)
    again = compact(small, compacted_masks(masks, small, x), x)
    assert architecture_record(again) == architecture_record(small)
    for key, value in small.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


@pytest.mark.parametrize("name", ["snn-sew-resnet", "ann-lenet-mnist"])
def test_nothing_pruned_gives_an_equal_model(name: str) -> None:
    model, x = build_case(name)
    small = compact(model, MaskSet(discover(model, x)), x)
    assert architecture_record(small) == architecture_record(model)
    for key, value in model.state_dict().items():
        assert torch.equal(small.state_dict()[key], value), key
    assert torch.equal(forward(small, x), forward(model, x))


def test_csr_linear_matches_dense_single_and_multi_step() -> None:
    torch.manual_seed(0)
    model, x = build_case("snn-mlp")
    small = compact(model, random_masks(model, x, 0.5, synapse_density=0.05), x)
    expected_rates = forward(small, x)
    replaced = sparsify_linears(small, min_sparsity=0.9)
    assert replaced and all(isinstance(small.get_submodule(n), CSRLinear) for n in replaced)
    # float sums in another order: rates may only differ where a membrane sits at threshold
    assert (forward(small, x) - expected_rates).abs().max() <= 1.0 / 3 + 1e-6
    dense = torch.nn.Linear(30, 7)
    with torch.no_grad():
        dense.weight[torch.rand(7, 30) < 0.9] = 0
    inputs = torch.randn(4, 5, 30)  # [T, B, features]
    torch.testing.assert_close(CSRLinear(dense)(inputs), dense(inputs), rtol=1e-5, atol=1e-5)


def test_compacted_file_roundtrip_through_the_cli(tmp_path: Path) -> None:
    from devprune.cli import main
    from devprune.runner.checkpoint import save_checkpoint
    from devprune.runner.config import config_from_dict, config_to_dict

    cfg = config_from_dict({"data": {"name": "synthetic"},
                            "model": {"name": "snn-small", "time_steps": 2}})
    model = build_model("snn-small", in_shape=(1, 28, 28), num_classes=10, time_steps=2).eval()
    x = torch.rand(2, 1, 28, 28)
    masks = random_masks(model, x, 0.4)
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "last.pt", {"model": model.state_dict(), "masks": masks.state_dict(),
                                      "config": config_to_dict(cfg)})
    assert main(["compact", str(run), "--out", str(tmp_path / "small.pt")]) == 0
    loaded = load_compacted(tmp_path / "small.pt")
    assert torch.equal(forward(loaded, x), forward(masked_copy(model, masks), x))
    assert sum(p.numel() for p in loaded.parameters()) < sum(p.numel() for p in model.parameters())


def test_cli_names_the_missing_checkpoint(tmp_path: Path) -> None:
    from devprune.cli import main

    assert main(["compact", str(tmp_path), "--out", str(tmp_path / "x.pt")]) == 2
