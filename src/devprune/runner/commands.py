"""CLI sub-commands of the runner: ``train``, ``eval``, ``report``, ``presets``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from devprune.errors import ConfigError
from devprune.pruning.targets import takes_target
from devprune.runner.config import load_config
from devprune.runner.evaluate import evaluate_run
from devprune.runner.matching import match_overrides
from devprune.runner.presets import list_presets
from devprune.runner.report import write_comparison_report, write_run_report
from devprune.runner.train import CONFIG_FILE, train

# `devprune train` finished and wrote its files, but the outcome is a failure (a layer pruned
# to nothing); 2 stays the code of bad input.
EXIT_FAILED_OUTCOME = 3

TRAIN_EPILOG = """\
examples:
  devprune train mnist-mlp-dense-quick                  # a shipped preset -> runs/<name>
  devprune train my.yaml --set train.epochs=50 --set prune.method=dpap --out runs/x
  devprune train mnist-mlp-dense-quick --set train.lr=5e-4 model.kwargs.hidden=[400]
  devprune train --resume --out runs/x                  # continue runs/x from last.pt
  devprune train mnist-mlp-dense-quick --set prune.method=magnitude --match runs/dpap
                                                        # baseline at a DPAP run's connectivity
  torchrun --standalone --nproc_per_node=4 -m devprune train mnist-mlp-dpap-quick  # DDP

--set values are YAML scalars: 1e-3, true, null, [40, 80], {hidden: [800]}.
A file may start from a preset with `base: <preset>`; docs/CONFIG.md lists every key.
Under torchrun data.batch_size is the global batch of all processes (docs/DISTRIBUTED.md).
"""

EVAL_EPILOG = """\
examples:
  devprune eval runs/x                    # test accuracy + workload of best.pt
  devprune eval runs/x --checkpoint last  # of the last epoch instead
"""

REPORT_EPILOG = """\
examples:
  devprune report runs/x                          # runs/x/report.md + PNGs
  devprune report runs/x --out reports/x          # the same, written to reports/x
  devprune report runs/dense runs/dpap --out runs/compare   # table + accuracy vs connectivity
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_train(subparsers)
    _register_eval(subparsers)
    _register_report(subparsers)
    presets = subparsers.add_parser("presets", help="list the shipped experiment presets",
                                    description="List the shipped presets with one line each.")
    presets.set_defaults(func=cmd_presets)


def _parser(subparsers: argparse._SubParsersAction, name: str, help_text: str,
            epilog: str) -> argparse.ArgumentParser:
    return subparsers.add_parser(name, help=help_text, description=help_text[0].upper() +
                                 help_text[1:] + ".", epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)


def _register_train(subparsers: argparse._SubParsersAction) -> None:
    p = _parser(subparsers, "train", "train (and prune) a network from a preset or YAML config",
                TRAIN_EPILOG)
    p.add_argument("config", nargs="?", metavar="CONFIG|PRESET",
                   help="a YAML file or a preset name (`devprune presets`); with --resume it "
                   "defaults to the run's own config.yaml")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE", help="override config keys, e.g. train.lr=1e-4")
    p.add_argument("--out", type=Path, help="run directory (default: run.out or runs/<name>)")
    p.add_argument("--match", type=Path, metavar="RUN",
                   help="baselines: prune the layers RUN pruned, each to RUN's final "
                   "connectivity (a matched comparison)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last.pt (exactly, on CPU); a run "
                   "killed before its first checkpoint starts again")
    p.add_argument("--force", action="store_true",
                   help="start anew in an --out folder that holds another run (it is kept "
                   "aside as <out>.replaced-<time>) or other files (written beside them)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars or banner; only the epoch lines and the result")
    p.set_defaults(func=cmd_train)


def _register_eval(subparsers: argparse._SubParsersAction) -> None:
    p = _parser(subparsers, "eval", "evaluate a run's checkpoint on the test split",
                EVAL_EPILOG)
    p.add_argument("run", type=Path, metavar="RUN", help="a run directory")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best",
                   help="which checkpoint (default best; last when the run has no best.pt)")
    p.set_defaults(func=cmd_eval)


def _register_report(subparsers: argparse._SubParsersAction) -> None:
    p = _parser(subparsers, "report", "write Markdown reports and PNG plots of runs",
                REPORT_EPILOG)
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run directories")
    p.add_argument("--out", type=Path,
                   help="one run: folder of its report (default: the run directory); "
                   "several runs: folder of the comparison report (default: <parent of the "
                   "first run>/comparison)")
    p.set_defaults(func=cmd_report)


# ------------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    source = args.config
    if source is None:
        if not (args.resume and args.out):
            raise ConfigError("train: give a CONFIG file or PRESET name (`devprune presets` "
                              "lists them), or --resume --out RUN to continue a run")
        source = str(args.out / CONFIG_FILE)
    cfg = load_config(source, args.overrides)
    if args.match is not None:
        cfg = load_config(source, [*args.overrides, *_match_overrides(cfg, args.match)])
    summary = train(cfg, args.out, resume=args.resume, quiet=args.quiet, force=args.force)
    emptied = summary.get("empty_layers") or {}
    if emptied and not cfg.run.allow_empty_layers:
        layers = ", ".join(f"{name} (epoch {epoch + 1})" for name, epoch in emptied.items())
        print(f"devprune: failed outcome: pruning removed every unit of {layers}, so no "
              "signal passes; the run's files are written. Prune less (prune.<method> "
              "settings) or set run.allow_empty_layers=true if this is intended",
              file=sys.stderr)
        return EXIT_FAILED_OUTCOME
    return 0


def _match_overrides(cfg: Any, run: Path) -> list[str]:
    """``--match RUN``: the baseline prunes RUN's pruned layers, each to RUN's connectivity."""
    if not takes_target(cfg.method_config()):
        raise ConfigError(f"train --match: prune.method={cfg.prune.method!r} takes no target; "
                          "use a baseline (magnitude, random, lth, set, rigl)")
    return match_overrides(cfg.prune.method, run)


def cmd_eval(args: argparse.Namespace) -> int:
    result = evaluate_run(args.run, args.checkpoint)
    print(_eval_text(result))
    return 0


def _eval_text(result: dict[str, Any]) -> str:
    lines = [f"{result['run']} ({result['checkpoint']}, after epoch {result['epochs_done']}): "
             f"test accuracy {100 * result['test_accuracy']:.2f}% on {result['test_samples']} "
             f"samples, connectivity {100 * result['connectivity']:.1f}%"]
    if result.get("workload"):
        lines.append("workload: " + json.dumps(result["workload"])[:600])
    lines.append(f"written: {result['path']}")
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    if len(args.runs) > 1 and args.out is not None and args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"report --out {args.out} is a file; give a folder for the "
                          "comparison report")
    for run in args.runs:
        if not run.is_dir():
            raise ConfigError(f"report: {run} is not a directory; pass run directories "
                              "written by `devprune train`")
    if len(args.runs) == 1:  # one run: --out is where its own report goes
        if args.out is not None and args.out.exists() and not args.out.is_dir():
            raise ConfigError(f"report --out {args.out} is a file; give a folder for the "
                              "run's report")
        print(f"wrote {write_run_report(args.runs[0], args.out)}")
        return 0
    for run in args.runs:
        print(f"wrote {write_run_report(run)}")
    out = args.out or args.runs[0].parent / "comparison"
    print(f"wrote {write_comparison_report(args.runs, out)}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    presets = list_presets()
    width = max((len(n) for n in presets), default=0)
    for name, description in presets.items():
        print(f"{name:<{width}}  {description}")
    return 0
