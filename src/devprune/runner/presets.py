"""Shipped experiment settings: every ``devprune/presets/*.yaml`` is a preset named by its stem.

A preset (or any config file) may start from another with ``base: <preset or path>``; its own
keys then override the base's, section by section. Paths in ``base`` are relative to the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from devprune.errors import ConfigError
from devprune.runner.yamlio import MAX_YAML_CHARS, deep_merge, yaml_load
from devprune.utils.registry import did_you_mean

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"


def preset_paths() -> dict[str, Path]:
    """Preset name -> file, for every YAML file in the presets folder."""
    files = sorted(PRESET_DIR.glob("*.yaml")) + sorted(PRESET_DIR.glob("*.yml"))
    return {path.stem: path for path in files}


def list_presets() -> dict[str, str]:
    """Preset name -> its one-line ``description``."""
    result = {}
    for name, path in preset_paths().items():
        raw = read_yaml(path)
        description = raw.get("description", "") if isinstance(raw, dict) else ""
        result[name] = " ".join(str(description).split())
    return result


def read_yaml(path: Path) -> Any:
    try:
        if path.stat().st_size > 4 * MAX_YAML_CHARS:
            raise ConfigError(f"config file {path} is {path.stat().st_size:,} bytes, more than "
                              f"a configuration holds (limit {MAX_YAML_CHARS:,} characters)")
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {err.start}); pass a "
                          "YAML file") from err
    try:
        return yaml_load(text, str(path)) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from err


def _locate(spec: str, relative_to: Path | None) -> Path:
    candidate = Path(spec).expanduser()
    if relative_to is not None and not candidate.is_absolute():
        beside = relative_to / candidate
        if beside.is_file():
            return beside
    if candidate.is_file():
        return candidate
    presets = preset_paths()
    if spec in presets:
        return presets[spec]
    if candidate.suffix in (".yaml", ".yml") or "/" in spec:
        raise ConfigError(f"config file {spec} does not exist")
    raise ConfigError(
        f"{spec!r} is neither a config file nor a preset{did_you_mean(spec, presets)}; "
        "`devprune presets` lists the presets"
    )


def resolve_source(spec: str, relative_to: Path | None = None,
                   _seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], str]:
    """Read a preset name or YAML path, resolving ``base:`` chains; returns (raw, name)."""
    path = _locate(spec, relative_to).resolve()
    if path in _seen:
        chain = " -> ".join(p.stem for p in (*_seen, path))
        raise ConfigError(f"base: circular chain of configs {chain}; remove one 'base' key")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top, got {raw!r}")
    base = raw.pop("base", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: base: expected a preset name or file path, got {base!r}")
        parent, _ = resolve_source(base, path.parent, (*_seen, path))
        parent.pop("description", None)  # a derived preset describes itself
        raw = deep_merge(parent, raw)
    return raw, path.stem
