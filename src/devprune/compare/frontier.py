"""The comparison's result: one row per setting (mean ± std over seeds), written as JSON and a
Markdown table, and the accuracy-connectivity and accuracy-energy plots."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devprune.compare.grid import Cell, Grid
from devprune.runner.metrics import read_metrics
from devprune.runner.plots import plot_frontier
from devprune.runner.report import read_summary
from devprune.runner.rundir import METRICS_FILE, SUMMARY_FILE
from devprune.utils.io import atomic_write_json, atomic_write_text

# (column, unit scale, format) of the table, in order; each is averaged over seeds.
QUANTITIES: dict[str, tuple[str, float, str]] = {
    "final_test": ("final test %", 100.0, ".2f"),
    "best_val_test": ("test % at best val", 100.0, ".2f"),
    "best_val_connectivity": ("kept % at best val", 100.0, ".2f"),
    "connectivity": ("weights kept %", 100.0, ".2f"),
    "units_alive": ("units alive %", 100.0, ".1f"),
    "sops": ("SOPs / sample (M)", 1e-6, ".3f"),
    "energy_uj": ("energy / sample (µJ)", 1.0, ".3f"),
    "wall_s": ("wall s", 1.0, ".0f"),
}


def run_row(run: Path) -> dict[str, Any]:
    """The quantities of one finished run directory."""
    summary = read_summary(run)  # refuses a damaged summary or another run's
    layers = read_metrics(run / METRICS_FILE)[-1]["layers"]
    pruned = [v for v in layers.values() if v.get("prunable")]
    alive = sum(v["units_alive"] for v in pruned)
    total = sum(v["units_total"] for v in pruned)
    workload = summary.get("workload") or {}
    sops = workload.get("SynapticOperations") or {}
    best = summary.get("best_val") or {}
    return {
        "final_test": summary["final"]["test_accuracy"],
        "best_val_test": best.get("test_accuracy"),
        # The best-validation epoch may precede the last pruning step: its own connectivity.
        "best_val_connectivity": best.get("connectivity"),
        "connectivity": summary["connectivity"],
        "units_alive": alive / total if total else None,
        "units": f"{alive}/{total}",
        "sops": (sops.get("Effective_ACs", 0.0) + sops.get("Effective_MACs", 0.0)) or None,
        "energy_uj": workload["Energy_pJ"] / 1e6 if "Energy_pJ" in workload else None,
        "wall_s": summary["wall_time_s"],
        "epochs": summary["epochs"],
        "method": summary["method"],
        "mode": summary["mode"],
    }


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def aggregate(grid: Grid, out: Path) -> list[dict[str, Any]]:
    """One row per setting (cell key) with every finished seed's quantities averaged."""
    rows = []
    for key in grid.settings():
        cells = [c for c in grid.cells if c.key == key]
        runs = [run_row(c.run_dir(out)) for c in cells
                if (c.run_dir(out) / SUMMARY_FILE).is_file()]
        row: dict[str, Any] = {"setting": key, "name": cells[0].name,
                               "target": cells[0].target, "match": cells[0].match,
                               "seeds": [c.seed for c in cells
                                         if (c.run_dir(out) / SUMMARY_FILE).is_file()],
                               "seeds_planned": len(cells)}
        if runs:
            row.update(method=runs[0]["method"], mode=runs[0]["mode"],
                       epochs=sorted({r["epochs"] for r in runs}),
                       units=[r["units"] for r in runs])
            for q in QUANTITIES:
                row[q], row[f"{q}_std"] = _mean_std([r[q] for r in runs])
        rows.append(row)
    return rows


def _cell(row: dict[str, Any], q: str) -> str:
    _, scale, fmt = QUANTITIES[q]
    mean, std = row.get(q), row.get(f"{q}_std")
    if mean is None:
        return "-"
    text = format(mean * scale, fmt)
    return text + (f" ± {format(std * scale, fmt)}" if std else "")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = ["setting", "method", "seeds", "epochs", *(QUANTITIES[q][0] for q in QUANTITIES)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if "method" not in row:
            lines.append(f"| {row['setting']} | (not run) |" + " |" * (len(head) - 2))
            continue
        method = row["method"] + (" (reference)" if row["mode"] == "reference" else "")
        epochs = "/".join(str(e) for e in row["epochs"])
        seeds = f"{len(row['seeds'])}/{row['seeds_planned']}"
        lines.append("| " + " | ".join([row["setting"], method, seeds, epochs,
                                          *(_cell(row, q) for q in QUANTITIES)]) + " |")
    return "\n".join(lines)


def _series(rows: list[dict[str, Any]], x: str, scale: float
            ) -> dict[str, list[tuple[float, float, float, float]]]:
    series: dict[str, list[tuple[float, float, float, float]]] = {}
    for row in rows:
        if row.get("method") in (None, "none") or row.get(x) is None:
            continue
        label = row["name"] if row["target"] is not None else row["setting"]
        series.setdefault(label, []).append(
            (row[x] * scale, (row[f"{x}_std"] or 0.0) * scale,
             100 * row["final_test"], 100 * (row["final_test_std"] or 0.0)))
    return series


def _dense(rows: list[dict[str, Any]]) -> tuple[float, float] | None:
    row = next((r for r in rows if r.get("method") == "none"), None)
    if row is None:
        return None
    return 100 * row["final_test"], 100 * (row["final_test_std"] or 0.0)


def write_frontier(grid: Grid, out: Path, *, command: str, grid_seconds: float | None = None,
                   log: Callable[[str], None] = print) -> Path:
    """``compare.json``, ``compare.md`` and the two PNG plots in ``out``."""
    rows = aggregate(grid, out)
    title = f"{grid.name} ({len(grid.seeds)} seed(s), mean ± std)"
    plot_frontier(_series(rows, "connectivity", 100.0), _dense(rows),
                  out / "accuracy_connectivity.png", xlabel="weights kept (%, log scale)",
                  title=title)
    plot_frontier(_series(rows, "energy_uj", 1.0), _dense(rows), out / "accuracy_energy.png",
                  xlabel="energy per sample (µJ, log scale)", title=title)
    total = sum((r.get("wall_s") or 0.0) * len(r.get("seeds", [])) for r in rows)
    atomic_write_json(out / "compare.json", {"grid": grid.name, "source": grid.source,
                                             "command": command, "seeds": grid.seeds,
                                             "rows": rows, "train_seconds_total": total,
                                             "grid_seconds_this_call": grid_seconds})
    text = (f"# {grid.name}\n\nCommand: `{command}`\n\nMean ± std over seeds {grid.seeds} "
            "(std omitted when 0 or one seed). Connectivity: kept fraction of the prunable "
            "weights; energy: devprune's per-sample estimate (docs/MEASUREMENT.md). Training "
            f"time of all runs: {total / 60:.1f} min (sum of the runs' own wall times).\n\n"
            + markdown_table(rows) + "\n\n![accuracy vs connectivity](accuracy_connectivity.png)"
            "\n![accuracy vs energy](accuracy_energy.png)\n")
    atomic_write_text(out / "compare.md", text)
    log(f"[compare] wrote {out / 'compare.md'}")
    return out / "compare.md"


__all__ = ["Cell", "aggregate", "markdown_table", "run_row", "write_frontier"]
