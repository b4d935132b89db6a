"""Target connectivity of the baseline methods: the fraction of prunable weights kept at the
end of pruning, as one global number or per layer.

``target: 0.1`` keeps 10% of all prunable weights; ``target: {"layer1": 0.15, "conv*": 0.4}``
gives each layer its own kept fraction (glob patterns over layer names; every pruned layer
must be covered). A per-layer target is how a baseline is *matched* to a DPAP or SD-SNN run
(``devprune.runner.matching`` reads one from a finished run).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from collections.abc import Sequence

from devprune.errors import ConfigError

Target = float | dict[str, float]


def takes_target(settings: object) -> bool:
    """True when a method's settings (dataclass or its class; None: a method without
    settings) have a ``target``: the methods ``--match`` and grid ``targets`` apply to."""
    return (settings is not None and dataclasses.is_dataclass(settings)
            and any(f.name == "target" for f in dataclasses.fields(settings)))


def check_fraction(value: object, key: str) -> float:
    """``value`` as a kept fraction in (0, 1], or a ConfigError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not 0.0 < value <= 1.0:
        raise ConfigError(f"{key}: {value!r} is not a kept fraction in (0, 1]; e.g. 0.1 keeps "
                          "10% of the prunable weights")
    return float(value)


def check_target(target: Target, key: str) -> Target:
    """Validate a global or per-layer target (values in (0, 1])."""
    if isinstance(target, dict):
        if not target:
            raise ConfigError(f"{key}: an empty mapping; give a number or layer: fraction pairs")
        return {str(k): check_fraction(v, f"{key}[{k!r}]") for k, v in target.items()}
    return check_fraction(target, key)


def layer_fractions(target: Target, layers: Sequence[str], key: str) -> dict[str, float]:
    """The kept fraction of every layer in ``layers`` under a per-layer ``target`` (the first
    matching pattern wins; an exact name wins over patterns)."""
    if not isinstance(target, dict):
        return dict.fromkeys(layers, float(target))
    out = {}
    for name in layers:
        if name in target:
            out[name] = target[name]
            continue
        hit = next((v for p, v in target.items() if fnmatch.fnmatchcase(name, p)), None)
        if hit is None:
            raise ConfigError(f"{key}: no entry for pruned layer {name!r}; the mapping covers "
                              f"{sorted(target)} (add the layer or a pattern such as '*')")
        out[name] = hit
    unused = [p for p in target if not any(fnmatch.fnmatchcase(n, p) for n in layers)]
    if unused:
        raise ConfigError(f"{key}: {unused} match no pruned layer; pruned layers are "
                          f"{list(layers)}")
    return out
