"""Config values that would break a run later are refused up front: non-finite numbers
anywhere (every float of every section and method, methods registered later included),
integers past their use, negative milestones, YAML alias bombs and recursive aliases."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from devprune.cli import main
from devprune.errors import ConfigError
from devprune.pruning import base as pruning_base
from devprune.pruning.base import Pruner
from devprune.runner.config import config_from_dict, load_config
from devprune.runner.yamlio import yaml_load


def _error(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    message = str(info.value)
    assert "\n" not in message
    return message


def _float_fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.type in (float, "float")]


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize(
    ("section", "key"),
    [("train", "lr"), ("train", "weight_decay"), ("train", "gamma"), ("train", "min_lr"),
     ("train", "momentum"), ("measure", "energy_mac_pj"), ("measure", "energy_ac_pj"),
     ("data", "val_fraction")],
)
def test_non_finite_runner_values_are_refused(section: str, key: str, bad: float) -> None:
    message = _error({section: {key: bad}})
    assert message.startswith(f"{section}.{key}: ") and "not a finite number" in message
    assert "default" in message


@pytest.mark.parametrize("method", ["dpap", "sdsnn"])
def test_every_float_constant_of_every_pruning_method_is_checked(method: str) -> None:
    config_cls = pruning_base.pruner_config_class(method)
    names = _float_fields(config_cls)
    assert names, f"{method} has float settings"
    for name in names:
        for bad in (float("nan"), float("inf")):
            message = _error({"prune": {"method": method, method: {name: bad}}})
            assert message.startswith(f"prune.{method}.{name}: "), message
            assert "not a finite number" in message


def test_a_method_registered_later_is_covered(monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclasses.dataclass
    class LaterConfig:
        rate: float = 0.5
        ratio: float | None = None
        schedule: list[float] = dataclasses.field(default_factory=list)

    monkeypatch.setitem(pruning_base._REGISTRY, "later", (Pruner, LaterConfig, "test"))
    for key, bad in (("rate", float("nan")), ("ratio", float("inf")),
                     ("schedule", [0.1, float("nan")])):
        message = _error({"prune": {"method": "later", "later": {key: bad}}})
        assert f"prune.later.{key}" in message and "not a finite number" in message


def test_non_finite_values_nested_in_free_form_mappings(tiny_yaml: Path) -> None:
    message = _error({"model": {"kwargs": {"neuron": {"threshold": float("nan")}}}})
    assert message.startswith("model.kwargs.neuron.threshold: nan is not a finite number")
    with pytest.raises(ConfigError, match=r"^train\.lr: inf is not a finite"):
        load_config(str(tiny_yaml), ["train.lr=.inf"])
    with pytest.raises(ConfigError, match=r"^data\.options\.noise: nan"):
        load_config(str(tiny_yaml), ["data.options={noise: .nan}"])


def test_numbers_too_large_for_their_use() -> None:
    assert "at most 3.4e38" in _error({"train": {"lr": 10**400}})
    assert _error({"train": {"lr": 1e300}}).startswith("train.lr: 1e+300 is too large")
    message = _error({"train": {"epochs": 2**64}})
    assert message.startswith("train.epochs: ") and "64 bits" in message
    for section in ("train", "data"):
        message = _error({section: {"seed": 2**63}})
        assert message.startswith(f"{section}.seed: ") and "2**63 - 1]" in message
        assert "[0, 2**63 - 1]" in _error({section: {"seed": -1}})
    message = _error({"train": {"threads": 100_000}})
    assert message.startswith("train.threads: ") and "[0, 1024]" in message
    message = _error({"model": {"time_steps": 10**7}})
    assert message.startswith("model.time_steps: ") and "[1, 4096]" in message
    config_from_dict({"train": {"seed": 2**63 - 1, "threads": 1024},
                      "model": {"time_steps": 4096}})


@pytest.mark.parametrize("milestones", [[-1, 3], [3, 3], [5, 2]])
def test_negative_or_unordered_milestones(milestones: list[int]) -> None:
    message = _error({"train": {"milestones": milestones}})
    assert message.startswith("train.milestones: ")


BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]"
       for i in range(8)]
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [(BOMB, "alias bomb"),
     ("a: &a [1, *a]\n", "refers to itself"),
     ("a: &a {b: *a}\n", "refers to itself"),
     ("[" * 200 + "]" * 200, "nested"),
     ("x: " + "1" * 2_000_000, "more than a configuration holds")],
)
def test_yaml_bombs_are_refused_quickly(text: str, expected: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=expected) as info:
        yaml_load(text, "bomb.yaml")
    assert time.perf_counter() - start < 5.0
    assert str(info.value).startswith("bomb.yaml: ") and "\n" not in str(info.value)


def test_a_config_file_bomb_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB.replace("a:", "description: x\ndata:\n  options: {}\nz:", 1))
    start = time.perf_counter()
    assert main(["train", str(bomb), "--out", str(tmp_path / "run")]) == 2
    assert time.perf_counter() - start < 10.0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bomb.yaml" in err and "alias bomb" in err
    assert not (tmp_path / "run").exists()
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["train", str(binary)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_a_model_too_large_for_memory_is_one_line(tmp_path: Path, tiny_yaml: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    assert main(["train", str(tiny_yaml), "--out", str(tmp_path / "run"), "--quiet",
                 "--set", "model.kwargs={hidden: [100000000000]}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model: building snn-mlp" in err and "smaller" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text", ["train lr=1", "train.\nlr=1", "|\n x=1", "tráin.lr=1"])
def test_override_keys_are_plain_dotted_names(text: str) -> None:
    from devprune.runner.yamlio import parse_override

    with pytest.raises(ConfigError, match="expected KEY=VALUE") as info:
        parse_override(text)
    assert "\n" not in str(info.value)
