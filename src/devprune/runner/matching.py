"""Matched comparisons: the per-layer connectivity a finished pruning run ended with, as a
baseline's per-layer ``target`` (``prune.<method>.target``), so that the baseline keeps
exactly as many weights in every layer as the run it is compared with.
"""

from __future__ import annotations

import json
from pathlib import Path

from devprune.errors import ConfigError
from devprune.runner.metrics import read_metrics
from devprune.runner.rundir import METRICS_FILE, SUMMARY_FILE


def matched_target(run: str | Path) -> dict[str, float]:
    """``{layer: kept fraction}`` of the prunable layers after the run's last epoch.

    Raises ConfigError when ``run`` is not a finished run or pruned nothing."""
    run = Path(run)
    summary_path = run / SUMMARY_FILE
    if not summary_path.is_file():
        raise ConfigError(f"match: {run} holds no finished run ({SUMMARY_FILE} missing); "
                          "finish the run first or point at another run directory")
    summary = json.loads(summary_path.read_text())
    if summary.get("method") in (None, "none"):
        raise ConfigError(f"match: {run} is a dense run (prune.method=none); match a pruning "
                          "run (dpap, sdsnn, ...) instead")
    records = read_metrics(run / METRICS_FILE)
    layers = records[-1].get("layers", {}) if records else {}
    target = {name: float(v["connectivity"]) for name, v in layers.items()
              if v.get("prunable") and "connectivity" in v}
    if not target or all(v >= 1.0 for v in target.values()):
        raise ConfigError(f"match: {run} ({summary.get('method')}) pruned nothing; there is no "
                          "connectivity to match")
    # A layer pruned to nothing cannot be a target (kept fractions lie in (0, 1]).
    return {name: max(value, 1e-6) for name, value in target.items()}


def match_overrides(method: str, run: str | Path) -> list[str]:
    """``--set`` overrides that make baseline ``method`` prune the layers ``run`` pruned, each
    to ``run``'s final connectivity (``train --match`` and a grid cell's ``match``)."""
    target = matched_target(run)
    return [f"prune.{method}.target={json.dumps(target)}",
            f"prune.{method}.include={json.dumps(sorted(target))}"]
