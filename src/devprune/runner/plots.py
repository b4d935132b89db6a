"""PNG plots of runs (matplotlib, Agg backend: no display needed).

- :func:`plot_training`: accuracy and connectivity over epochs of one run.
- :func:`plot_units`: units alive per layer over epochs (the network's development).
- :func:`plot_accuracy_vs_connectivity`: several runs, test accuracy against connectivity.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from devprune.utils.io import atomic_write_bytes

Records = list[dict[str, Any]]


def _epochs(records: Records) -> list[int]:
    return [r["epoch"] + 1 for r in records]  # epochs trained, 1-based


def _percent(values: list[float | None]) -> list[float]:
    return [100 * v if v is not None else float("nan") for v in values]


def _save(fig: plt.Figure, path: Path) -> Path:
    for ax in fig.axes:
        if ax.get_xlabel() == "epochs trained":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def plot_training(records: Records, path: Path, title: str) -> Path:
    """Left: train/val/test accuracy; right: connectivity overall and per layer."""
    fig, (acc_ax, conn_ax) = plt.subplots(1, 2, figsize=(11, 4))
    x = _epochs(records)
    for key, label, style in (("train_accuracy", "train", ":"), ("val_accuracy", "validation",
                              "--"), ("test_accuracy", "test", "-")):
        values = [r.get(key) for r in records]
        if any(v is not None for v in values):
            acc_ax.plot(x, _percent(values), style, marker="o", markersize=3, label=label)
    acc_ax.set(xlabel="epochs trained", ylabel="accuracy (%)", title="accuracy")
    acc_ax.legend(loc="lower right")
    acc_ax.grid(alpha=0.3)
    conn_ax.plot(x, _percent([r["connectivity"] for r in records]), "k-", marker="o",
                 markersize=3, linewidth=2, label="all weight layers")
    for layer in records[-1]["layers"]:
        conn_ax.plot(x, _percent([r["layers"].get(layer, {}).get("connectivity")
                                  for r in records]), "--", label=layer)
    conn_ax.set(xlabel="epochs trained", ylabel="connectivity (% non-zero weights)",
                title="connectivity", ylim=(0, 105))
    conn_ax.legend(loc="lower left", fontsize="small")
    conn_ax.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


def plot_units(records: Records, path: Path, title: str) -> Path:
    """Units (filters / neurons) alive per layer, as % of the layer's units, over epochs."""
    fig, ax = plt.subplots(figsize=(7, 4))
    x = _epochs(records)
    for layer, last in records[-1]["layers"].items():
        alive = [r["layers"].get(layer, {}).get("units_alive") for r in records]
        share = [100 * a / last["units_total"] if a is not None else float("nan")
                 for a in alive]
        ax.plot(x, share, marker="o", markersize=3,
                label=f"{layer} ({last['units_alive']}/{last['units_total']} at the end)")
    ax.set(xlabel="epochs trained", ylabel="units alive (% of layer)", ylim=(0, 105),
           title=f"{title}: units alive per layer")
    ax.legend(loc="lower left", fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_accuracy_vs_connectivity(runs: dict[str, Records], path: Path) -> Path:
    """Each run's trajectory (faint) and final point: test accuracy against connectivity."""
    fig, ax = plt.subplots(figsize=(7, 5))
    for name, records in runs.items():
        conn = _percent([r["connectivity"] for r in records])
        acc = _percent([r["test_accuracy"] for r in records])
        line = ax.plot(conn, acc, "-", alpha=0.35)[0]
        ax.plot(conn[-1:], acc[-1:], "o", markersize=8, color=line.get_color(),
                label=f"{name}: {acc[-1]:.2f}% at {conn[-1]:.1f}%")
    ax.set(xlabel="connectivity (% non-zero weights)", ylabel="test accuracy (%)",
           title="test accuracy vs connectivity (line: epochs, dot: final)")
    ax.invert_xaxis()  # sparser to the right: the direction pruning moves
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_frontier(series: dict[str, list[tuple[float, float, float, float]]],
                  dense: tuple[float, float] | None, path: Path, *, xlabel: str, title: str,
                  log_x: bool = True) -> Path:
    """Accuracy against a cost axis, one line per method: ``series[method]`` holds points
    ``(x, x_std, accuracy %, accuracy std)`` (means over seeds, error bars = std); ``dense``
    is (accuracy %, std), drawn as a horizontal line with its band."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    if dense is not None:
        ax.axhline(dense[0], color="k", linestyle="--", linewidth=1,
                   label=f"dense {dense[0]:.2f}%")
        ax.axhspan(dense[0] - dense[1], dense[0] + dense[1], color="k", alpha=0.08)
    markers = "osD^v<>phX*"
    for i, (name, points) in enumerate(series.items()):
        points = sorted(points)
        xs, xerr, ys, yerr = (list(v) for v in zip(*points, strict=True))
        ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, marker=markers[i % len(markers)],
                    linestyle="-" if len(points) > 1 else "none", capsize=3, markersize=6,
                    label=name)
    if log_x:
        ax.set_xscale("log")
        # Plain numbers at 1-2-5 steps (5, 10, 20 rather than 10^1), no minor labels.
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel=xlabel, ylabel="final test accuracy (%)", title=title)
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)
