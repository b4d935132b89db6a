"""The run directory: nothing a user had is overwritten, a run killed before its first
checkpoint starts again in place, leftovers of a kill are cleaned, run.name stays in runs/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devprune.cli import main
from devprune.errors import CheckpointError, ConfigError, DevpruneError
from devprune.runner.config import load_config
from devprune.runner.metrics import read_metrics
from devprune.runner.train import train

TIMING = {"epoch_time_s", "wall_time_s"}


def _train(cfg: Any, out: Path, **kwargs: Any) -> tuple[dict[str, Any], list[str]]:
    lines: list[str] = []
    return train(cfg, out, log=lines.append, **kwargs), lines


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _records(run: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING}
            for r in read_metrics(run / "metrics.jsonl")]


def _killed_before_first_checkpoint(cfg: Any, run: Path) -> None:
    """One epoch done (metrics.jsonl, best.pt) but no last.pt, plus a kill's temp files."""
    _train(cfg, run, quiet=True, stop_after=1)
    assert not (run / "last.pt").exists() and (run / "metrics.jsonl").is_file()
    (run / ".last.pt.k1ll3d0a.tmp").write_bytes(b"half a checkpoint")
    (run / ".metrics.jsonl.abc_1234.tmp").write_text("{")


def test_a_folder_that_is_not_a_run_is_refused_unless_forced(tmp_path: Path,
                                                             tiny_yaml: Path) -> None:
    cfg = load_config(str(tiny_yaml), ["train.epochs=1"])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (mine / ".thesis.tex.abcd1234.tmp").write_text("an editor's temp file")
    before = _snapshot(mine)
    with pytest.raises(ConfigError, match=r"not a devprune run \(it holds \.thesis\.tex\..*, "
                                          r"thesis\.tex\)"):
        _train(cfg, mine, quiet=True)
    assert _snapshot(mine) == before
    _train(cfg, mine, quiet=True, force=True)
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert (mine / ".thesis.tex.abcd1234.tmp").exists()  # not one of the run's files
    assert (mine / "summary.json").is_file()
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        _train(cfg, afile, quiet=True, force=True)


@pytest.mark.parametrize("resume", [False, True])
def test_a_run_killed_before_its_first_checkpoint_restarts_in_place(
    tmp_path: Path, tiny_yaml: Path, resume: bool
) -> None:
    cfg = load_config(str(tiny_yaml), ["run.checkpoint_every=2"])
    _train(cfg, tmp_path / "straight", quiet=True)
    run = tmp_path / "run"
    _killed_before_first_checkpoint(cfg, run)
    summary, lines = _train(cfg, run, resume=resume)
    assert "starting it again from epoch 1" in "\n".join(lines)
    assert "removed 2 temporary file(s)" in "\n".join(lines)
    assert not list(run.glob(".*.tmp"))
    assert summary["epochs"] == 3 and _records(run) == _records(tmp_path / "straight")


def test_an_unfinished_run_of_another_config_needs_force(tmp_path: Path,
                                                         tiny_yaml: Path) -> None:
    run = tmp_path / "run"
    _killed_before_first_checkpoint(load_config(str(tiny_yaml), ["run.checkpoint_every=2"]),
                                    run)
    other = load_config(str(tiny_yaml), ["train.lr=0.02", "train.epochs=1"])
    before = _snapshot(run)
    with pytest.raises(ConfigError, match=r"another configuration \(train\.lr: 0\.01 -> 0\.02"):
        _train(other, run, quiet=True)
    assert _snapshot(run) == before
    _, lines = _train(other, run, force=True)
    assert "kept the previous run" in lines[0]
    assert len(read_metrics(run / "metrics.jsonl")) == 1
    assert "lr: 0.02" in (run / "config.yaml").read_text()
    (kept,) = tmp_path.glob("run.replaced-*")
    assert _snapshot(kept) == before  # nothing deleted, --force included


def test_force_keeps_a_finished_run_aside(tmp_path: Path, tiny_yaml: Path) -> None:
    cfg = load_config(str(tiny_yaml), ["train.epochs=1"])
    run = tmp_path / "run"
    _train(cfg, run, quiet=True)
    before = _snapshot(run)
    with pytest.raises(ConfigError, match=r"already holds a run \(last\.pt\); pass --resume .*"
                                          r"--force to keep it aside"):
        _train(cfg, run, quiet=True)
    _train(cfg, run, quiet=True, force=True)
    _train(cfg, run, quiet=True, force=True)
    kept = sorted(tmp_path.glob("run.replaced-*"))
    assert len(kept) == 2 and all(_snapshot(k).keys() == before.keys() for k in kept)
    assert _snapshot(kept[0]) == before


def test_force_never_replaces_a_users_file_of_a_run_files_name(tmp_path: Path,
                                                               tiny_yaml: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my report")
    with pytest.raises(ConfigError, match=r"holds report\.md, which the run would replace"):
        _train(load_config(str(tiny_yaml)), mine, quiet=True, force=True)
    assert [p.name for p in mine.iterdir()] == ["report.md"]


def test_resume_with_fewer_epochs_than_done_keeps_config_yaml(tmp_path: Path,
                                                              tiny_yaml: Path) -> None:
    run = tmp_path / "run"
    _train(load_config(str(tiny_yaml)), run, quiet=True, stop_after=2)
    before = _snapshot(run)
    with pytest.raises(CheckpointError, match=r"train\.epochs=1 but .* already completed 2 "
                                              r"epochs; resume with train\.epochs >= 2"):
        _train(load_config(str(tiny_yaml), ["train.epochs=1"]), run, resume=True)
    assert _snapshot(run) == before
    summary, lines = _train(load_config(str(tiny_yaml), ["train.epochs=4"]), run, resume=True)
    assert "with changed settings: train.epochs: 3 -> 4" in lines[0]
    assert summary["epochs"] == 4


@pytest.mark.parametrize("name", ["../../outside", "/tmp/abs", "..", ".hidden", "a/b", ""])
def test_run_name_cannot_leave_the_runs_folder(tiny_yaml: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=r"^run\.name: .* must be one folder name"):
        load_config(str(tiny_yaml), [f"run.name={name!r}"])


def test_cli_refusals_are_one_line_and_write_nothing(tmp_path: Path, tiny_yaml: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main(["train", str(tiny_yaml), "--out", str(mine), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err and str(mine) in err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert main(["train", str(tiny_yaml), "--set", "run.name=../escape", "--quiet"]) == 2
    assert "run.name" in capsys.readouterr().err
    assert not (tmp_path / "escape").exists()


KILLER = """
import os, signal, sys
import torch
import devprune.utils.io as io
from devprune.cli import main

def save_then_die(obj, path):  # SIGKILL halfway through writing the first last.pt
    if str(path).endswith("last.pt"):
        with io.atomic_writer(path, "wb") as handle:
            handle.write(b"PK half a checkpoint")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    with io.atomic_writer(path, "wb") as handle:
        torch.save(obj, handle)

io.atomic_torch_save = save_then_die
sys.exit(main(sys.argv[1:]))
"""


def test_a_sigkill_during_the_first_checkpoint_write_resumes_from_the_cli(
    tmp_path: Path, tiny_yaml: Path
) -> None:
    import subprocess
    import sys

    run, straight = tmp_path / "run", tmp_path / "straight"
    args = [str(tiny_yaml), "--quiet", "--set", "train.epochs=2", "train.threads=1"]
    killed = subprocess.run([sys.executable, "-c", KILLER, "train", *args, "--out", str(run)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    assert not (run / "last.pt").exists() and list(run.glob(".last.pt.*.tmp"))
    assert main(["train", "--resume", "--out", str(run), "--quiet"]) == 0
    assert main(["train", *args, "--out", str(straight)]) == 0
    assert not list(run.glob(".*.tmp"))
    assert _records(run) == _records(straight)


def test_a_damaged_metrics_log_is_one_line_on_resume(tmp_path: Path, tiny_yaml: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    _train(load_config(str(tiny_yaml)), run, quiet=True, stop_after=1)
    metrics = run / "metrics.jsonl"
    metrics.write_text(metrics.read_text()[:-40])
    assert main(["train", "--resume", "--out", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "metrics.jsonl: line 1 is not valid JSON" in err


def test_a_refusal_after_the_checks_changes_nothing(tmp_path: Path, tiny_yaml: Path) -> None:
    """--force over a run, then the dataset is missing: the old run stays where it was."""
    run = tmp_path / "run"
    _train(load_config(str(tiny_yaml), ["train.epochs=1"]), run, quiet=True)
    (run / ".last.pt.k1ll3d0a.tmp").write_bytes(b"x")
    before = _snapshot(run)
    missing = load_config(str(tiny_yaml), ["data.name=mnist", f"data.root={tmp_path / 'none'}"])
    with pytest.raises(DevpruneError, match="mnist"):
        _train(missing, run, quiet=True, force=True)
    assert _snapshot(run) == before and not list(tmp_path.glob("run.replaced-*"))
