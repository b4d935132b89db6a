"""Markdown reports with PNG plots, for one run or a comparison of several."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devprune.errors import CheckpointError, ConfigError, DevpruneError
from devprune.runner.config import config_hash, load_config
from devprune.runner.metrics import RECORD_KEYS, read_metrics
from devprune.runner.plots import plot_accuracy_vs_connectivity, plot_training, plot_units
from devprune.runner.rundir import CONFIG_FILE, SUMMARY_FILE
from devprune.utils.io import atomic_write_text

REPORT_FILE = "report.md"


def _pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


# Keys of summary.json that reports and `devprune measure` read.
SUMMARY_KEYS = ("run", "dataset", "model", "method", "mode", "epochs", "final",
                "best_test_reference", "connectivity")


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """``summary.json`` of a run (None while it is unfinished), refusing a damaged one and one
    that another run wrote (its config hash differs from the folder's ``config.yaml``)."""
    path = Path(run_dir) / SUMMARY_FILE
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({type(err).__name__}); it was "
                              "damaged: delete it and run `devprune train --resume` on the run "
                              "to write it again") from err
    missing = ([k for k in SUMMARY_KEYS if k not in summary] if isinstance(summary, dict)
               else ["(not a JSON object)"])
    if missing:
        raise CheckpointError(f"{path} lacks {missing[:4]}: it is not the summary of "
                              "`devprune train` (damaged or edited)")
    config = Path(run_dir) / CONFIG_FILE
    if config.is_file() and isinstance(summary.get("config_hash"), str):
        try:
            ours = config_hash(load_config(str(config), []))
        except DevpruneError:
            ours = None
        if ours is not None and ours != summary["config_hash"]:
            raise CheckpointError(f"{path} belongs to another run: its config hash "
                                  f"{summary['config_hash']} is not that of {config} ({ours}); "
                                  "delete it or restore the run's own summary")
    return summary


def load_run(run_dir: str | Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(summary or None while unfinished, epoch records) of a run directory."""
    run_dir = Path(run_dir)
    records = read_metrics(run_dir / "metrics.jsonl", RECORD_KEYS)
    if not records:
        raise ConfigError(f"{run_dir} holds no metrics.jsonl with epochs; pass a run directory "
                          "written by `devprune train`")
    summary = read_summary(run_dir)
    if summary is not None and summary.get("epochs") != records[-1]["epoch"] + 1:
        raise CheckpointError(
            f"{run_dir / 'summary.json'} reports {summary.get('epochs')} epochs but "
            f"{run_dir / 'metrics.jsonl'} ends at epoch {records[-1]['epoch'] + 1}: the summary "
            "belongs to another run; delete it or restore the run's own summary")
    return summary, records


def _headline_rows(summary: dict[str, Any] | None, records: list[dict[str, Any]]) -> list[str]:
    last = records[-1]
    rows = [
        ("epochs trained", str(last["epoch"] + 1)),
        ("final test accuracy", _pct(last["test_accuracy"])),
    ]
    if summary is not None:
        best = summary.get("best_val")
        best_conn = best.get("connectivity") if best else None
        conn_text = f", connectivity {_pct(best_conn)}" if best_conn is not None else ""
        rows.append(("test accuracy at best-validation epoch",
                     f"{_pct(best['test_accuracy'])} (epoch {best['epoch'] + 1}{conn_text})"
                     if best else "- (no validation split)"))
        ref = summary["best_test_reference"]
        rows.append(("best test accuracy (reference convention, selected on test)",
                     f"{_pct(ref['test_accuracy'])} (epoch {ref['epoch'] + 1})"))
    rows += [
        ("connectivity (non-zero / all weights of the prunable layers)",
         _pct(last["connectivity"])),
        ("compression (1 - connectivity)", _pct(1 - last["connectivity"])),
        ("connectivity of all conv + linear layers", _pct(last.get("connectivity_all"))),
        ("parameters non-zero / total", f"{last['params_nonzero']:,} / {last['params_total']:,}"),
        ("units alive", ", ".join(f"{n} {v['units_alive']}/{v['units_total']}"
                                  for n, v in last["layers"].items())),
    ]
    rows += [(f"workload: {k}", _fmt(v)) for k, v in _scalars(last.get("workload")).items()]
    rows.append(("wall time", f"{last.get('wall_time_s', 0):.0f} s"))
    return ["| quantity | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _scalars(section: Any) -> dict[str, Any]:
    """Numbers of a measurement dict, one level of nesting flattened (``SOPs.Effective_ACs``)."""
    if not isinstance(section, dict):
        return {}
    flat: dict[str, Any] = {}
    for key, value in section.items():
        if _is_number(value):
            flat[key] = value
        elif isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items() if _is_number(v)})
    return flat


def _events_text(events: Any) -> str:
    """The scalar pruning events of an epoch (``pruning_steps 2``); nested tables are left out."""
    if not isinstance(events, dict):
        return "-"
    parts = [f"{k} {_fmt(v)}" for k, v in events.items() if _is_number(v)]
    return ", ".join(parts) or "-"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else f"{value:,}"


def _epoch_table(records: list[dict[str, Any]]) -> list[str]:
    lines = ["| epoch | lr | train loss | val acc | test acc | connectivity | units alive |"
             " pruning events |", "|---|---|---|---|---|---|---|---|"]
    for r in records:
        units = ", ".join(f"{v['units_alive']}" for v in r["layers"].values())
        events = _events_text(r.get("pruning"))
        lines.append(f"| {r['epoch'] + 1} | {r['lr']:.3g} | {r['train_loss']:.4f} | "
                     f"{_pct(r['val_accuracy'])} | {_pct(r['test_accuracy'])} | "
                     f"{_pct(r['connectivity'], 1)} | {units} | {events} |")
    return lines


def write_run_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """``report.md``, ``accuracy_connectivity.png`` and ``units.png`` of ``run_dir``, written
    into ``out_dir`` (default: the run directory itself)."""
    run_dir = Path(run_dir)
    out_dir = run_dir if out_dir is None else Path(out_dir)
    summary, records = load_run(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = (summary or {}).get("run", run_dir.name)
    plot_training(records, out_dir / "accuracy_connectivity.png", name)
    plot_units(records, out_dir / "units.png", name)
    lines = [f"# Run {name}", "", _run_description(run_dir, summary, records), "",
             *_headline_rows(summary, records), "",
             "![accuracy and connectivity](accuracy_connectivity.png)", "",
             "![units alive per layer](units.png)", "", "## Epochs", "",
             *_epoch_table(records), ""]
    path = out_dir / REPORT_FILE
    atomic_write_text(path, "\n".join(lines))
    return path


def _run_description(run_dir: Path, summary: dict[str, Any] | None,
                     records: list[dict[str, Any]]) -> str:
    """What ran and whether it finished; an unfinished run is described from its
    ``config.yaml`` (the summary is written at the end)."""
    if summary:
        return (f"{summary['model']} on {summary['dataset']}, method {summary['method']} "
                f"({summary['mode']}) — finished.")
    done = records[-1]["epoch"] + 1
    try:
        cfg = load_config(str(run_dir / CONFIG_FILE), [])
    except DevpruneError:  # no readable config: say only what the metrics show
        return f"Unfinished: {done} epochs so far (no summary.json yet)."
    return (f"{cfg.model.name} on {cfg.data.name}, method {cfg.prune.method} "
            f"({cfg.prune.mode}) — unfinished: epoch {done} of {cfg.train.epochs} "
            "(no summary.json yet).")


def write_comparison_report(run_dirs: list[str | Path], out_dir: str | Path) -> Path:
    """A table of several runs and their accuracy-vs-connectivity plot in ``out_dir``."""
    out_dir = Path(out_dir)
    runs: dict[str, list[dict[str, Any]]] = {}
    rows = ["| run | method | final test acc | final connectivity | test acc at best val "
            "(its connectivity) | params non-zero | epochs |", "|---|---|---|---|---|---|---|"]
    paths = [Path(run_dir) for run_dir in run_dirs]
    for run_dir, name in zip(paths, _short_names(paths), strict=True):
        summary, records = load_run(run_dir)
        label = _unique(runs, name)
        runs[label] = records
        last = records[-1]
        best = (summary or {}).get("best_val")
        best_text = "-"
        if best:
            conn = best.get("connectivity")
            best_text = _pct(best["test_accuracy"]) + (f" ({_pct(conn, 1)})" if conn is not None
                                                       else "")
        rows.append(f"| {label} | {(summary or {}).get('method', '?')} | "
                    f"{_pct(last['test_accuracy'])} | {_pct(last['connectivity'], 1)} | "
                    f"{best_text} | {last['params_nonzero']:,} | {last['epoch'] + 1} |")
    plot_accuracy_vs_connectivity(runs, out_dir / "accuracy_vs_connectivity.png")
    lines = ["# Comparison of runs", "", *rows, "",
             "![test accuracy vs connectivity](accuracy_vs_connectivity.png)", ""]
    path = out_dir / REPORT_FILE
    atomic_write_text(path, "\n".join(lines))
    return path


def _short_names(paths: list[Path]) -> list[str]:
    """The fewest trailing path parts that tell the runs apart (``dpap/seed-0`` beside
    ``dense/seed-0``), so compare grids' runs are labelled by their setting."""
    longest = max((len(p.parts) for p in paths), default=1)
    for depth in range(1, longest + 1):
        names = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(names)) == len(names):
            return names
    return [p.name for p in paths]  # the same directory twice: _unique numbers them


def _unique(existing: dict[str, Any], name: str) -> str:
    label, n = name, 2
    while label in existing:
        label, n = f"{name} ({n})", n + 1
    return label
