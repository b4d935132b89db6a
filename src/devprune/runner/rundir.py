"""The run directory ``devprune train`` writes, and what it may write over.

Nothing a user had is overwritten, ``--force`` included:

- a missing or empty folder gets a new run;
- a folder holding ``last.pt`` is continued with ``--resume``; without it, it is refused, or
  with ``--force`` kept aside (renamed ``<out>.replaced-<time>``) and a new run started;
- a run killed before its first checkpoint (``config.yaml`` / ``metrics.jsonl`` but no
  ``last.pt``) is started again in place, with or without ``--resume``, when its
  ``config.yaml`` describes the same computation; a run of another configuration is refused,
  or with ``--force`` kept aside;
- any other non-empty folder is refused unless ``--force``; the run's files are then written
  beside the files already there, unless one of them has the name of a run file.

Temporary files a killed write left behind (``.<file>.<8 chars>.tmp``, see
:mod:`devprune.utils.io`) are removed before a run starts or resumes.

:func:`prepare_run_dir` only reads: it returns a :class:`RunDir` plan (or refuses), and
:meth:`RunDir.apply` carries it out once the run is known to start (session built, checkpoint
accepted), so a refusal at any point before leaves the folder as it was.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from devprune.errors import CheckpointError, ConfigError, DevpruneError
from devprune.runner.config import (
    Config,
    config_differences,
    config_from_dict,
    config_hash,
    config_to_dict,
)
from devprune.runner.metrics import read_metrics
from devprune.runner.presets import read_yaml

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
LAST, BEST = "last.pt", "best.pt"

# Files `devprune train` (and eval / report of the run) writes; config.yaml and metrics.jsonl
# mark a run.
RUN_FILE = re.compile(r"^(config\.yaml|metrics\.jsonl|summary\.json|last\.pt|best\.pt|"
                      r"epoch-\d+\.pt|report\.md|eval-(best|last)\.json|[\w.-]+\.png)$")
RUN_MARKERS = (CONFIG_FILE, METRICS_FILE)
# Files of a run without checkpoint that would mislead once it is started again.
STALE_FILE = re.compile(r"^(metrics\.jsonl|summary\.json|best\.pt|epoch-\d+\.pt|"
                        r"eval-(best|last)\.json)$")
TEMP_FILE = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


@dataclass
class RunDir:
    """What :func:`prepare_run_dir` decided: restore ``last.pt`` or not, and what to change in
    the folder before the run writes there (:meth:`apply`)."""

    out: Path
    resume: bool
    set_aside_as: Path | None = None  # --force over a run: rename the folder to this
    remove: list[Path] = field(default_factory=list)  # a kill's temp files, stale run files
    notes: list[str] = field(default_factory=list)

    def apply(self) -> list[str]:
        """Carry out the plan (the main process only); returns lines to log."""
        if self.set_aside_as is not None:
            self.out.rename(self.set_aside_as)
        for path in self.remove:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return self.notes


def is_temp_file(path: Path) -> bool:
    """A temporary file of an interrupted atomic write of one of the run's files."""
    match = TEMP_FILE.match(path.name)
    return bool(match) and bool(RUN_FILE.match(match.group("name")))


def temp_files(out: Path) -> list[Path]:
    """The temporary files a killed write left in ``out``."""
    return [p for p in out.iterdir() if p.is_file() and is_temp_file(p)] if out.is_dir() else []


def prepare_run_dir(out: Path, cfg: Config, *, resume: bool, force: bool = False) -> RunDir:
    """Decide how ``cfg`` may run in ``out`` (see the module doc), changing nothing.

    Raises ConfigError / CheckpointError naming ``out`` and the fix.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; choose another --out")
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"--out {out}: {blocker} is a file, not a folder; choose another "
                          "--out")
    if (out / LAST).exists() and not (out / LAST).is_file():
        raise CheckpointError(f"{out / LAST} is not a file (a folder?); move it away, then "
                              "resume or start the run")
    entries = [p for p in out.iterdir() if not is_temp_file(p)] if out.is_dir() else []
    if (out / LAST).is_file():
        if resume:
            return _with_temp_clean_up(RunDir(out, True))
        if not force:
            raise ConfigError(f"run directory {out} already holds a run ({LAST}); pass --resume "
                              "to continue it, --force to keep it aside and start anew, or "
                              "choose another --out")
        return _set_aside(out)
    if not entries:
        if resume:
            raise CheckpointError(f"--resume: {out} holds no {LAST}; start the run without "
                                  "--resume (or check the --out directory)")
        return _with_temp_clean_up(RunDir(out, False))
    if any((out / name).is_file() for name in RUN_MARKERS):
        return _restart_in_place(out, cfg, force=force)
    _check_foreign(out, entries, force=force)
    if resume:
        raise CheckpointError(f"--resume: {out} holds no {LAST}; start the run without "
                              "--resume (or check the --out directory)")
    return RunDir(out, False, notes=[f"writing the run into the existing folder {out} "
                                     "(--force)"])


def _check_foreign(out: Path, entries: list[Path], *, force: bool) -> None:
    """A folder that is not a run: refused unless --force, and even then if the run would
    replace one of its files."""
    if not force:
        shown = ", ".join(sorted(p.name for p in entries)[:3])
        more = f" and {len(entries) - 3} more" if len(entries) > 3 else ""
        raise ConfigError(f"--out {out} already exists and is not a devprune run (it holds "
                          f"{shown}{more}); choose another --out, or pass --force to write the "
                          "run into it")
    clashes = sorted(p.name for p in entries if RUN_FILE.match(p.name))
    if clashes:
        raise ConfigError(f"--force writes the run beside the files in {out}, but it holds "
                          f"{', '.join(clashes)}, which the run would replace; move them or "
                          "choose another --out")


def _restart_in_place(out: Path, cfg: Config, *, force: bool) -> RunDir:
    """A run without a checkpoint: start it again, if it is this configuration (or --force)."""
    lost = _lost_checkpoint(out, cfg)
    if lost and not force:
        raise CheckpointError(lost)
    diffs = saved_config_differences(out, cfg)
    if diffs and not force:
        raise ConfigError(f"run directory {out} holds an unfinished run (no {LAST} yet) of "
                          f"another configuration ({'; '.join(diffs[:4])}); choose another "
                          "--out, or pass --force to keep it aside and start this run there")
    if diffs or lost:
        return _set_aside(out)
    plan = _with_temp_clean_up(RunDir(out, False))
    plan.remove += [p for p in out.iterdir() if STALE_FILE.match(p.name)]
    plan.notes.append(f"{out} holds a run killed before its first checkpoint (no {LAST}): "
                      "starting it again from epoch 1")
    return plan


def _lost_checkpoint(out: Path, cfg: Config) -> str | None:
    """Why ``out`` is not a run killed before its first checkpoint (None: it is): its log has
    more epochs than come before the first ``last.pt``, so that file was deleted or lost, and
    starting again in place would discard the run's other checkpoints."""
    logged = len(read_metrics(out / METRICS_FILE))
    if logged <= cfg.run.checkpoint_every:
        return None
    return (f"{out} has {logged} epochs in {METRICS_FILE} but no {LAST}: the checkpoint was "
            f"deleted or lost. Restore it, copy best.pt (or an epoch-NNN.pt) to {LAST} to "
            "resume from that epoch, or pass --force to keep the run aside and start anew")


def _set_aside(out: Path) -> RunDir:
    """``--force`` over a run: rename it ``<out>.replaced-<time>`` (nothing is deleted)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept = out.with_name(f"{out.name}.replaced-{stamp}")
    for n in range(2, 1000):  # bounded: a free name is found long before
        if not kept.exists():
            break
        kept = out.with_name(f"{out.name}.replaced-{stamp}-{n}")
    return RunDir(out, False, set_aside_as=kept,
                  notes=[f"kept the previous run in {out} as {kept} (--force); starting anew"])


def _with_temp_clean_up(plan: RunDir) -> RunDir:
    found = temp_files(plan.out)
    if found:
        plan.remove += found
        plan.notes.append(f"removed {len(found)} temporary file(s) an interrupted write left "
                          f"in {plan.out}")
    return plan


def saved_config_differences(out: Path, cfg: Config) -> list[str]:
    """Why the run in ``out`` is not ``cfg``'s computation (empty: it is)."""
    path = out / CONFIG_FILE
    if not path.is_file():
        return [f"no {CONFIG_FILE}"]
    try:
        saved = config_from_dict(read_yaml(path))
    except DevpruneError as err:
        return [f"its {CONFIG_FILE} does not load: {err}"]
    if config_hash(saved) == config_hash(cfg):
        return []
    return config_differences(config_to_dict(saved), cfg) or ["(settings hash differs)"]


def refuse_overwrite(out: Path, *, command: str, what: str, example: str, force: bool,
                     run: Path | None = None) -> None:
    """The rule every command writing a single ``--out`` file follows (compact, export): a
    run's own files are never replaced, ``--force`` notwithstanding; any other existing file
    only with ``force``. ``run``: the run the command reads (its folder counts as a run's even
    without markers)."""
    run_dir = out.resolve().parent
    in_a_run = (run is not None and run_dir == run.resolve()) or any(
        (run_dir / marker).is_file() for marker in RUN_MARKERS)
    if RUN_FILE.match(out.name) and in_a_run:
        raise ConfigError(f"{command} --out {out} is one of the files of the run in {run_dir}; "
                          f"write the {what} elsewhere, e.g. {out.parent / example} "
                          "(--force never replaces a run's own files)")
    if out.exists() and not force:
        raise ConfigError(f"{command} --out {out} already exists; choose another --out, or "
                          "pass --force to replace it")
