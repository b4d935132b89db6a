"""What every baseline shares: settings that name a target connectivity and the pruned
layers, and a hard-mask pruner built from them (``magnitude``, ``random``, ``lth``, ``set``,
``rigl`` derive from these two classes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from torch import nn

from devprune.errors import ConfigError
from devprune.pruning.masked import MaskedPruner, select_layers
from devprune.pruning.targets import Target, check_target, layer_fractions
from devprune.structure import discover


@dataclass
class TargetSettings:
    """Settings every baseline has.

    Attributes:
        target: kept fraction of the prunable weights at the end, in (0, 1]: one number or a
            mapping layer-name pattern -> fraction (docs/COMPARE.md#target-connectivity).
        include / exclude / include_output: which layers are pruned (as for DPAP).
        mode: always ``default`` (hard masks).
    """

    method: ClassVar[str] = "baseline"

    target: Target = 0.1
    include: list[str] | None = None
    exclude: list[str] | None = None
    include_output: bool = False
    mode: Literal["default"] = "default"

    def __post_init__(self) -> None:
        self.target = check_target(self.target, f"prune.{self.method}.target")
        if self.mode != "default":
            raise ConfigError(f"prune.mode: the {self.method} baseline uses hard masks only; "
                              "set prune.mode=default ('reference' is the authors' soft "
                              "masking of DPAP / SD-SNN)")

    def require(self, ok: bool, key: str, what: str) -> None:
        """A ConfigError naming ``prune.<method>.<key>`` unless ``ok``."""
        if not ok:
            raise ConfigError(f"prune.{self.method}.{key}: {what}")


class TargetPruner(MaskedPruner):
    """Hard masks over the chosen layers, each with its final kept fraction."""

    config_class: ClassVar[type[TargetSettings]] = TargetSettings

    def __init__(self, model: nn.Module, example_input: Any = None,
                 config: TargetSettings | None = None) -> None:
        cfg = config or self.config_class()
        structure = discover(model, example_input)
        layers = select_layers(structure, cfg.include, cfg.exclude, cfg.include_output)
        super().__init__(model, example_input, cfg, mode="default", layers=layers,
                         structure=structure)
        self.cfg = cfg
        self.layers = layers
        self.fractions = layer_fractions(cfg.target, [la.name for la in layers],
                                         f"prune.{self.name}.target")
        # A per-layer target fixes every layer's share; a global one may use one threshold.
        self.per_layer = getattr(cfg, "scope", "layer") == "layer" or isinstance(cfg.target,
                                                                                 dict)
