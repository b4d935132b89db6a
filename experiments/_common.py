"""Helpers shared by the experiment scripts: run ``devprune train`` in a subprocess and read
a run directory back (``metrics.jsonl``, ``summary.json``).

The scripts import it as ``from _common import ...``: running ``python experiments/x.py``
puts ``experiments/`` first on ``sys.path``.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
# The CLI of the interpreter running the script (the project's venv), as a module so that it
# works without the console script on PATH.
DEVPRUNE = [sys.executable, "-m", "devprune"]


def train_command(preset: str, out: Path | str, overrides: Sequence[str] = ()) -> list[str]:
    """The argv of ``devprune train PRESET --quiet --out OUT [--set OVERRIDE...]``."""
    cmd = [*DEVPRUNE, "train", preset, "--quiet", "--out", str(out)]
    if overrides:
        cmd += ["--set", *overrides]
    return cmd


def show_command(cmd: Sequence[str]) -> str:
    """A shell line for ``cmd``, with the interpreter written relative to the repository when
    it lives inside it (``.venv/bin/python -m devprune ...``)."""
    exe = Path(cmd[0])
    if exe.is_relative_to(ROOT):
        exe = exe.relative_to(ROOT)
    return shlex.join([str(exe), *cmd[1:]])


def run_train(preset: str, out: Path | str, overrides: Sequence[str] = (), *,
              cwd: Path | None = None, echo: bool = False, log: Path | None = None) -> float:
    """Runs one training to completion (raises ``CalledProcessError`` on failure) in ``cwd``
    (None: the current directory); returns its wall-clock seconds. ``echo`` prints the
    command first; ``log`` receives the run's stdout and stderr instead of the terminal."""
    cmd = train_command(preset, out, overrides)
    if echo:
        print("$", show_command(cmd), flush=True)
    start = time.perf_counter()
    if log is None:
        subprocess.run(cmd, check=True, cwd=cwd)
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as stream:
            subprocess.run(cmd, check=True, cwd=cwd, stdout=stream, stderr=subprocess.STDOUT)
    return time.perf_counter() - start


def ensure_run(preset: str, out: Path, overrides: Sequence[str] = (), *,
               log: Path | None = None) -> None:
    """Makes ``out`` a finished run of ``preset`` + ``overrides``: nothing when its
    summary.json exists, a resume with the run's own config when it was killed after a
    checkpoint, else a training from the start (echoed; output to ``log``)."""
    if (out / "summary.json").exists():
        return
    if (out / "last.pt").exists():
        cmd = [*DEVPRUNE, "train", str(out / "config.yaml"), "--quiet", "--resume", "--out",
               str(out)]
        subprocess.run(cmd, check=True)
        return
    if out.exists():  # started but no checkpoint yet: start again
        shutil.rmtree(out)
    run_train(preset, out, overrides, echo=True, log=log)


def read_metrics(run: Path) -> list[dict]:
    """The per-epoch records of a run's ``metrics.jsonl``."""
    lines = (Path(run) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def read_summary(run: Path) -> dict:
    return json.loads((Path(run) / "summary.json").read_text())
