"""``devprune export RUN --format nir --out model.nir``: a run's pruned SNN as a NIR file.

Loads the run's checkpoint (last, else best) with its masks and learnt time steps, compacts
the model, builds the NIR graph (docs/EXPORT.md), writes it to memory, reads it back, runs
it with nirtorch (and snnTorch's importer where installed) on a seeded random batch for the
model's time steps, compares the spikes with the devprune model, and only then writes the
file (atomically). Any refusal or failure leaves no file.
"""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path
from typing import Any

import torch

from devprune.compact import compact
from devprune.errors import ConfigError, DevpruneError, ModelStructureError
from devprune.export.nir_graph import DEFAULT_DT, build_nir_graph, import_nir
from devprune.export.nir_run import compare_spikes
from devprune.kinds import WEIGHT_LAYERS
from devprune.runner.data import load_split
from devprune.runner.rundir import refuse_overwrite
from devprune.runner.runmodel import RunModel, build_args, build_network, load_run
from devprune.utils.io import atomic_write_bytes

FORMATS = ("nir",)
MIN_AGREEMENT = 0.999  # below this the export is wrong, not a rounding flip at a threshold


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a run's pruned SNN (NIR), verified by re-running it",
        description="Compact a run's pruned SNN, fold BatchNorm, map it to NIR primitives, "
        "write the file, read it back, run it with nirtorch (and snnTorch's NIR import where "
        "installed) and compare its spikes with the devprune model. Needs "
        "pip install 'devprune[export]'. See docs/EXPORT.md.",
        epilog="example: devprune export runs/mnist-quick-dpap --format nir --out model.nir",
    )
    parser.add_argument("run", type=Path, help="run directory (holds best.pt / last.pt)")
    parser.add_argument("--format", choices=FORMATS, default="nir", help="export format")
    parser.add_argument("--out", type=Path, required=True, help="file to write")
    parser.add_argument("--checkpoint", choices=["best", "last"], default=None,
                        help="which checkpoint (default: last, the pruned structure the "
                        "run ended with; as compact)")
    parser.add_argument("--dt", type=float, default=None,
                        help="Euler step the NIR neuron constants are written for "
                        "(default 1e-4, what snnTorch's importer assumes)")
    parser.add_argument("--samples", type=int, default=16,
                        help="test samples the spike comparison runs (default 16; random "
                        "input when the run's dataset is not present)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip running the file back and comparing spikes")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")
    parser.set_defaults(func=_export)


def check_writable(out: Path, force: bool = False) -> None:
    """Fail early, with one line, when ``out`` cannot (or, without ``force``, may not) be
    written."""
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a file name such as model.nir")
    refuse_overwrite(out, command="export", what="NIR file", example="model.nir", force=force)
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot write {out}: {err.strerror or err} ({parent}); choose a "
                          "writable --out path") from None
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"cannot write {out}: directory {parent} is not writable; choose a "
                          "writable --out path")


def _time_steps_info(run: RunModel) -> dict[str, Any]:
    """Whether training changed the number of time steps (DPAP's time side), and the
    configured one (the config's, or the model's default when it sets none)."""
    configured = getattr(build_network(build_args(run.cfg)), "time_steps", None)
    saved = getattr(run.model, "time_steps", None)
    info: dict[str, Any] = {"time_steps_learnt": saved is not None and saved != configured}
    if isinstance(configured, int):
        info["time_steps_configured"] = configured
    return info


def _verification_batch(data_cfg: Any, in_shape: Any, samples: int
                        ) -> tuple[torch.Tensor, str]:
    """The first test samples of the run's dataset, else (data absent) seeded random input."""
    try:
        test = load_split(data_cfg, "test", samples)
        x, _ = test.batch(torch.arange(min(samples, len(test))), augment=False)
        return x.float(), f"{len(x)} {data_cfg.name} test samples"
    except (DevpruneError, OSError):
        generator = torch.Generator().manual_seed(0)
        return (torch.rand(samples, *in_shape, generator=generator),
                f"{samples} random samples ({data_cfg.name} not present)")


def export_run(run: Path, out: Path, *, which: str | None = None, dt: float | None = None,
               samples: int = 16, verify: bool = True, force: bool = False) -> dict[str, Any]:
    """Export ``run`` to ``out``; returns the graph, the comparisons and a summary."""
    nir = import_nir()
    if samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {samples}")
    check_writable(out, force)
    loaded = load_run(run, which)
    model, build = loaded.model, loaded.build
    meta = {"run": str(run), "model": str(build["model"]), **_time_steps_info(loaded)}
    example, source = _verification_batch(loaded.cfg.data, build["in_shape"], samples)
    before = {n: m for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)}
    small = compact(model, loaded.masks, example)
    graph = build_nir_graph(small, example, dt=DEFAULT_DT if dt is None else dt,
                            before=before, metadata=meta)
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    data = buffer.getvalue()
    back = nir.read(io.BytesIO(data))
    comparisons = []
    if verify:
        comparisons = compare_spikes(small, back, example)
        ours = comparisons[0]
        if ours.agreement < MIN_AGREEMENT:
            raise ModelStructureError(
                f"NIR export: the re-read graph's spikes agree with the model's only "
                f"{100 * ours.agreement:.2f}% of the time under nirtorch; no file written "
                "(please report this model)")
    try:
        atomic_write_bytes(out, data)
    except OSError as err:
        raise ConfigError(f"cannot write {out}: {err.strerror or err}; choose a writable --out "
                          "path") from None
    nir.read(out)  # the file on disk must read back too
    return {"graph": back, "comparisons": comparisons, "compacted": small, "bytes": len(data),
            "verified_on": source}


def summary_lines(graph: Any, comparisons: list[Any]) -> list[str]:
    meta = graph.metadata
    lines = [f"{len(graph.nodes)} nodes, {len(graph.edges)} edges; time steps "
             f"{int(meta['time_steps'])}"
             + (f" (learnt; configured {int(meta['time_steps_configured'])})"
                if bool(meta.get("time_steps_learnt")) else "")
             + f", encoding {meta['encoding']}, dt {float(meta['dt']):g}"]
    for name, node in graph.nodes.items():
        m = getattr(node, "metadata", {}) or {}
        if "synapses" in m:
            lines.append(
                f"  {name}: {type(node).__name__} units {int(m['units'])}/"
                f"{int(m['units_dense'])}, synapses {int(m['synapses'])}/"
                f"{int(m['synapses_dense_total'])} ({100 * float(m['connectivity_dense']):.1f}% "
                "of the dense layer)"
                + (f", folded {m['folded_batch_norm']}" if "folded_batch_norm" in m else ""))
    lines += [c.line() for c in comparisons]
    return lines


def _export(args: argparse.Namespace) -> int:
    result = export_run(args.run, args.out, which=args.checkpoint, dt=args.dt,
                        samples=args.samples, verify=not args.no_verify, force=args.force)
    print("\n".join(summary_lines(result["graph"], result["comparisons"])))
    if result["comparisons"]:
        print(f"(spikes compared on {result['verified_on']})")
    print(f"wrote {args.out} ({result['bytes']} bytes); read it with nir.read({str(args.out)!r})")
    return 0
