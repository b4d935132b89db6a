"""Per-layer Markdown tables of static and workload metrics (optionally beside a dense twin)."""

from __future__ import annotations

from typing import Any

Row = list[str]


def _count(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1e6:
        return f"{value / 1e6:.3f}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _markdown(header: Row, rows: list[Row]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _static_cells(layer: dict[str, Any] | None) -> Row:
    if layer is None:
        return ["-", "-"]
    return [f"{layer['units_alive']}/{layer['units_total']}", _pct(layer["connectivity"])]


def _workload_cells(conn: dict[str, Any] | None) -> Row:
    if conn is None:
        return ["-", "-", "-", "-", "-"]
    return [conn["input"], _pct(conn["post_rate"]), _count(conn["Effective_MACs"]),
            _count(conn["Effective_ACs"]), _count(conn["Energy_pJ"])]


def _total_row(static: dict[str, Any], workload: dict[str, Any] | None) -> Row:
    units = static["UnitsAlive"]
    cells = [f"{units['alive_all']}/{units['total_all']}", _pct(static["Connectivity_all"])]
    if workload is None:
        return cells
    ops = workload["SynapticOperations"]
    return [*cells, "", _pct(workload["FiringRate"]), _count(ops["Effective_MACs"]),
            _count(ops["Effective_ACs"]), _count(workload["Energy_pJ"])]


STATIC_HEADER = ["units alive", "connectivity"]
WORKLOAD_HEADER = ["input", "post rate", "MACs/sample", "ACs/sample", "energy pJ/sample"]


def layer_table(static: dict[str, Any], workload: dict[str, Any] | None = None, *,
                dense_static: dict[str, Any] | None = None,
                dense_workload: dict[str, Any] | None = None) -> str:
    """Markdown table, one row per weight layer plus a total row.

    Columns: units alive / total, connectivity, and with ``workload`` the input kind, the
    firing rate of the layer's postsynaptic neurons, MACs, ACs and energy per sample. With
    ``dense_static`` (and ``dense_workload``) the same columns of the dense twin come first,
    prefixed ``dense``, so a pruned model reads against its unpruned reference.
    """
    names = list(static["layers"])
    per_model = STATIC_HEADER + (WORKLOAD_HEADER if workload is not None else [])
    header = ["layer"]
    if dense_static is not None:
        header += [f"dense {h}" for h in per_model]
    header += per_model
    rows = []
    for name in names:
        row = [name]
        if dense_static is not None:
            row += _model_cells(dense_static, dense_workload, name, workload is not None)
        row += _model_cells(static, workload, name, workload is not None)
        rows.append(row)
    total = ["**total**"]
    if dense_static is not None:
        total += _padded_total(dense_static, dense_workload, workload is not None)
    total += _padded_total(static, workload, workload is not None)
    rows.append(total)
    return _markdown(header, rows)


def _model_cells(static: dict[str, Any], workload: dict[str, Any] | None, name: str,
                 with_workload: bool) -> Row:
    cells = _static_cells(static["layers"].get(name))
    if with_workload:
        conn = workload["connections"].get(name) if workload is not None else None
        cells += _workload_cells(conn)
    return cells


def _padded_total(static: dict[str, Any], workload: dict[str, Any] | None,
                  with_workload: bool) -> Row:
    cells = _total_row(static, workload)
    if with_workload and workload is None:
        cells += ["-"] * len(WORKLOAD_HEADER)
    return cells


def summary_lines(static: dict[str, Any], workload: dict[str, Any] | None = None) -> list[str]:
    """One-line-per-metric summary with the NeuroBench names."""
    lines = [
        f"ParameterCount {static['ParameterCount']} (non-zero {static['ParameterCount_nonzero']})",
        f"Footprint {static['Footprint']} B (deployable {static['Footprint_deployable']} B)",
        f"ConnectionSparsity {static['ConnectionSparsity']:.4f}",
        f"Connectivity {static['Connectivity']:.4f} (all layers {static['Connectivity_all']:.4f})",
    ]
    if workload is not None:
        ops = workload["SynapticOperations"]
        lines += [
            f"ActivationSparsity {workload['ActivationSparsity']:.4f}",
            f"SynapticOperations Effective_MACs {ops['Effective_MACs']:.1f} "
            f"Effective_ACs {ops['Effective_ACs']:.1f} Dense {ops['Dense']:.1f}",
            f"Energy_pJ {workload['Energy_pJ']:.1f} (ANN equivalent "
            f"{workload['ANN_Energy_pJ']:.1f})",
        ]
        if "MembraneUpdates" in workload:  # runs measured before these existed lack them
            neuron_ops = workload["NeuronOperations"]
            lines.append(f"MembraneUpdates {workload['MembraneUpdates']:.1f}, NeuronOperations "
                         f"Effective {neuron_ops['Effective']:.1f} Dense "
                         f"{neuron_ops['Dense']:.1f}")
    return lines
