"""Config schema: validation messages, overrides, base chains, round trip, hashing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from devprune.errors import ConfigError
from devprune.runner.config import (
    config_from_dict,
    config_hash,
    config_to_dict,
    dump_config,
    load_config,
)
from devprune.runner.yamlio import apply_overrides, parse_override


def _error(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    return str(info.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"train": {"lrr": 0.1}}, ["train.lrr", "did you mean 'lr'", "allowed keys in train"]),
        ({"trian": {}}, ["trian", "did you mean 'train'", "allowed"]),
        ({"train": {"optimizer": "adamm"}},
         ["train.optimizer", "'adamm'", "'adam'", "'adamw'", "'sgd'", "did you mean 'adam'"]),
        ({"train": {"epochs": "ten"}}, ["train.epochs", "expected int", "'ten'"]),
        ({"train": {"epochs": 2.5}}, ["train.epochs", "expected int"]),
        ({"train": {"deterministic": 1}}, ["train.deterministic", "expected bool"]),
        ({"train": {"milestones": [40, "x"]}}, ["train.milestones[1]", "expected int"]),
        ({"train": {"milestones": [80, 40]}}, ["train.milestones", "strictly increasing"]),
        ({"train": {"epochs": 5, "warmup_epochs": 5}}, ["train.warmup_epochs", "[0, train"]),
        ({"data": {"val_fraction": 1.5}}, ["data.val_fraction", "[0, 1)"]),
        ({"data": "mnist"}, ["data", "expected a mapping"]),
        ({"model": {"kwargs": [1, 2]}}, ["model.kwargs", "mapping"]),
        ({"prune": {"method": "dpa"}}, ["prune.method", "unknown method", "choose one of"]),
        ({"prune": {"mode": "hard"}}, ["prune.mode", "'reference'", "'default'"]),
        ({"prune": {"metod": "none"}}, ["prune.metod", "did you mean 'method'"]),
        ({"prune": {"none": {"x": 1}}}, ["prune.none", "has no settings"]),
        ({"measure": {"subset": 0}}, ["measure.subset", "positive"]),
    ],
)
def test_bad_configs_name_the_key_and_the_fix(raw: dict[str, Any], expected: list[str]) -> None:
    message = _error(raw)
    for fragment in expected:
        assert fragment in message, (fragment, message)


def test_defaults_and_int_to_float() -> None:
    cfg = config_from_dict({"train": {"lr": 1}})
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.prune.method == "none" and cfg.method_config() is None


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("train.lr=1e-4", ["train", "lr"], 1e-4),
        ("train.epochs=7", ["train", "epochs"], 7),
        ("train.compile=true", ["train", "compile"], True),
        ("data.limit_train=null", ["data", "limit_train"], None),
        ("train.milestones=[40, 80]", ["train", "milestones"], [40, 80]),
        ("model.kwargs={hidden: [400]}", ["model", "kwargs"], {"hidden": [400]}),
        ("run.name=a=b", ["run", "name"], "a=b"),
        ("data.name=fashion-mnist", ["data", "name"], "fashion-mnist"),
    ],
)
def test_override_values_are_yaml_scalars(text: str, path: list[str], value: Any) -> None:
    assert parse_override(text) == (path, value)


@pytest.mark.parametrize("text", ["train.lr", "=3", "train..lr=1", "train.lr=[1,"])
def test_malformed_overrides_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--set"):
        parse_override(text)


def test_overrides_apply_nested_and_keep_the_input(tiny_raw: dict[str, Any]) -> None:
    new = apply_overrides(tiny_raw, ["model.kwargs.hidden=[8]", "train.schedule=cosine"])
    assert new["model"]["kwargs"] == {"hidden": [8]} and new["train"]["schedule"] == "cosine"
    assert tiny_raw["model"]["kwargs"] == {"hidden": [24]}
    with pytest.raises(ConfigError, match=r"train\.lr is a value, not a section"):
        apply_overrides(tiny_raw, ["train.lr.x=1"])


def test_override_errors_are_validated_with_the_key_path(tiny_yaml: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.optimizer"):
        load_config(str(tiny_yaml), ["train.optimizer=lamb"])


def test_base_chain_overrides_section_by_section(tmp_path: Path, tiny_yaml: Path) -> None:
    child = tmp_path / "child.yaml"
    child.write_text(yaml.safe_dump({"base": "tiny.yaml", "description": "child",
                                     "train": {"epochs": 9}}))
    cfg = load_config(str(child))
    assert cfg.train.epochs == 9 and cfg.train.lr == 0.01  # lr kept from the base
    assert cfg.description == "child" and cfg.run.name == "tiny"  # base set run.name


def test_base_cycle_and_missing_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(str(tmp_path / "a.yaml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="did you mean 'mnist-mlp-dense-quick'"):
        load_config("mnist-mlp-dense-quik")


def test_resolved_config_round_trips_through_yaml(tiny_yaml: Path) -> None:
    cfg = load_config(str(tiny_yaml), ["train.schedule=step", "train.milestones=[1, 2]"])
    again = config_from_dict(yaml.safe_load(dump_config(cfg)))
    assert config_to_dict(again) == config_to_dict(cfg)
    assert config_hash(again) == config_hash(cfg)


def test_hash_ignores_run_settings_but_not_training(tiny_yaml: Path) -> None:
    base = config_hash(load_config(str(tiny_yaml)))
    assert config_hash(load_config(str(tiny_yaml), ["run.name=x", "train.epochs=9"])) == base
    assert config_hash(load_config(str(tiny_yaml), ["train.lr=0.02"])) != base


def test_method_section_is_validated_against_its_dataclass(shrink_method: str) -> None:
    cfg = config_from_dict({"prune": {"method": "shrink", "mode": "reference",
                                      "shrink": {"fraction": 0.5}}})
    settings = cfg.method_config()
    assert settings.fraction == 0.5 and settings.mode == "reference"
    assert "shrink" in config_to_dict(cfg)["prune"]
    message = _error({"prune": {"method": "shrink", "shrink": {"fracton": 0.5}}})
    assert "prune.shrink.fracton" in message and "did you mean 'fraction'" in message
    message = _error({"prune": {"method": "shrink", "shrink": {"fraction": "half"}}})
    assert "prune.shrink.fraction" in message and "expected float" in message
    message = _error({"prune": {"method": "shrink", "mode": "default",
                                "shrink": {"mode": "reference"}}})
    assert "contradicts prune.mode" in message


def test_sections_of_other_methods_are_kept_unused(shrink_method: str) -> None:
    cfg = config_from_dict({"prune": {"method": "none", "shrink": {"fraction": 0.3}}})
    assert cfg.method_config() is None and cfg.prune.settings["shrink"].fraction == 0.3


@pytest.mark.parametrize("method, key, other", [
    ("dpap", "cadence", "fit"), ("dpap", "end", 40), ("sdsnn", "end", 40)])
def test_settings_added_later_keep_old_runs_hashes(tiny_raw, method, key, other) -> None:
    """A run written before `key` existed (its config lacks it) hashes as one that states
    the default; a run that sets another value hashes differently."""
    from devprune.runner.config import config_from_dict, config_hash

    tiny_raw["prune"] = {"method": method, method: {}}
    before = config_hash(config_from_dict(tiny_raw))
    default = {"cadence": "manual", "end": None}[key]
    tiny_raw["prune"][method][key] = default
    assert config_hash(config_from_dict(tiny_raw)) == before
    tiny_raw["prune"][method][key] = other
    assert config_hash(config_from_dict(tiny_raw)) != before
