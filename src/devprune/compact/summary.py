"""Before/after counts of a compaction: parameters and units per weight layer."""

from __future__ import annotations

from typing import Any

from torch import nn

from devprune.kinds import WEIGHT_LAYERS, unit_counts


def _units(module: nn.Module) -> int:
    return unit_counts(module)[0]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_nonzero_parameters(model: nn.Module) -> int:
    return sum(int((p != 0).sum()) for p in model.parameters())


def compaction_summary(before: nn.Module, after: nn.Module) -> dict[str, Any]:
    """``{"params": [before, after], "nonzero": [..], "layers": [{name, units, params}]}``."""
    after_modules = dict(after.named_modules())
    layers = []
    for name, module in before.named_modules():
        if not isinstance(module, WEIGHT_LAYERS) or name not in after_modules:
            continue
        small = after_modules[name]
        layers.append({
            "name": name,
            "units": [_units(module), _units(small)],
            "params": [count_parameters(module), count_parameters(small)],
        })
    return {
        "params": [count_parameters(before), count_parameters(after)],
        "nonzero": [count_nonzero_parameters(before), count_nonzero_parameters(after)],
        "layers": layers,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A fixed-width before/after table."""
    rows = [("layer", "units", "params")]
    for layer in summary["layers"]:
        (u0, u1), (p0, p1) = layer["units"], layer["params"]
        rows.append((layer["name"], f"{u0} -> {u1}", f"{p0:,} -> {p1:,}"))
    (p0, p1), (n0, n1) = summary["params"], summary["nonzero"]
    rows.append(("total", "", f"{p0:,} -> {p1:,} ({p1 / max(p0, 1):.1%})"))
    rows.append(("non-zero", "", f"{n0:,} -> {n1:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                  for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    )
