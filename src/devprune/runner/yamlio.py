"""Reading configuration text safely: YAML 1.2 numbers, no objects, no alias bombs, and the
``--set KEY=VALUE`` overrides and ``base:`` merging that build a configuration from text.

Shared by :mod:`devprune.runner.config` (validation) and :mod:`devprune.runner.presets`
(files and ``base:`` chains); it imports neither.
"""

from __future__ import annotations

import re
import typing
from typing import Any

import yaml

from devprune.errors import ConfigError

MAX_YAML_CHARS = 1_000_000
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader reading YAML 1.2 floats: ``1e-4`` is a number, not a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
               r"|[0-9][0-9_]*[eE][-+]?[0-9]+|\.inf|\.Inf|\.INF|\.nan|\.NaN|\.NAN)$"),
    list("-+0123456789."),
)


def yaml_load(text: str, source: str = "YAML") -> Any:
    """Parse YAML text (config files and ``--set`` values) with YAML 1.2 number rules.

    A SafeLoader subclass: no arbitrary objects. Text over ``MAX_YAML_CHARS``, nesting deeper
    than ``MAX_YAML_DEPTH`` and aliases that expand past ``MAX_YAML_NODES`` nodes (alias
    bombs) or refer to themselves are refused before anything is constructed.
    """
    if len(text) > MAX_YAML_CHARS:
        raise ConfigError(f"{source}: {len(text):,} characters is more than a configuration "
                          f"holds (limit {MAX_YAML_CHARS:,}); pass the right file")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_yaml_size(node, source)
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError(f"{source}: YAML nested too deeply (limit {MAX_YAML_DEPTH} "
                          "levels)") from None
    finally:
        loader.dispose()


def _check_yaml_size(root: yaml.Node, source: str) -> None:
    """Count the nodes ``root`` expands to, aliases included; refuse bombs and cycles."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise ConfigError(f"{source}: a YAML alias refers to itself (recursive anchor "
                              f"{node.start_mark.line + 1}:{node.start_mark.column + 1}); "
                              "write the value out")
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{source}: YAML nested deeper than {MAX_YAML_DEPTH} levels")
        open_nodes.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_YAML_NODES:
                raise ConfigError(f"{source}: YAML expands to more than {MAX_YAML_NODES:,} "
                                  "values (an alias bomb?); write the configuration out")
        open_nodes.discard(key)
        sizes[key] = total
        return total

    size(root, 0)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=1e-4"`` -> (["train", "lr"], 0.0001); the value is read as a YAML scalar."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[\w-]+(\.[\w-]+)*", key, flags=re.ASCII):
        raise ConfigError(
            f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. train.lr=0.001 or "
            "model.kwargs.hidden=[800]"
        )
    try:
        parsed = yaml_load(value, f"--set {key}") if value.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {key}: value {value!r} is not valid YAML "
                          f"({' '.join(str(err).split())})") from err
    return key.split("."), parsed


def apply_overrides(raw: dict[str, Any], overrides: typing.Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``KEY=VALUE`` override applied (validated later)."""
    result = _deep_copy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for depth, key in enumerate(path[:-1]):
            child = node.setdefault(key, {})
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                where = ".".join(path[: depth + 1])
                raise ConfigError(f"--set {'.'.join(path)}: {where} is a value, not a section")
            node = child
        node[path[-1]] = value
    return result


def _deep_copy(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _deep_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deep_copy(v) for v in obj]
    return obj


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, section by section (lists and scalars are replaced whole)."""
    merged = _deep_copy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = _deep_copy(value)
    return merged
