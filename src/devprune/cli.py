"""The ``devprune`` command: a thin argparse layer over the library.

Each area owns its sub-commands in a ``commands`` module exposing ``register(subparsers)``;
this file only lists those modules, parses, and turns user errors into one-line messages.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from devprune import __version__
from devprune.errors import DevpruneError

# Modules that contribute sub-commands, in the order `devprune --help` lists them.
COMMAND_MODULES = [
    "devprune.data.commands",
    "devprune.runner.commands",
    "devprune.commands.compact",
    "devprune.commands.measure",
    "devprune.commands.export",
    "devprune.compare.commands",
]

EPILOG = """\
typical session:
  devprune data fetch mnist                 # real MNIST, checksum-verified
  devprune presets                          # shipped experiment settings
  devprune train mnist-mlp-dpap-quick       # train + prune, writes runs/<name>
  devprune report runs/<name>               # tables and plots
"""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (exit code 2), like every other
    devprune error: ``devprune train: error: <what> (devprune train --help)``."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="devprune",
        description="Developmental, activity-driven pruning (DPAP, SD-SNN) for spiking and "
        "artificial neural networks.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"devprune {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        result = args.func(args)
    except DevpruneError as err:
        print(f"devprune: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("devprune: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
