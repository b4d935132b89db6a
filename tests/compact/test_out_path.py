"""``devprune compact --out`` never overwrites a user's file without --force, never a run's own
files, and refuses before compacting; the compacted file carries a checksum."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from devprune.cli import main
from devprune.compact import load_compacted
from devprune.errors import CheckpointError
from devprune.models import build_model
from devprune.runner.checkpoint import save_checkpoint
from devprune.runner.config import config_from_dict, config_to_dict
from tests.compact.helpers import random_masks
from tests.runner.test_checkpoint_checksum import _flip_tensor_byte


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run directory as `devprune train` leaves it: config.yaml, last.pt, best.pt."""
    cfg = config_from_dict({"data": {"name": "synthetic"},
                            "model": {"name": "snn-small", "time_steps": 2}})
    model = build_model("snn-small", in_shape=(1, 28, 28), num_classes=10, time_steps=2)
    masks = random_masks(model, torch.rand(2, 1, 28, 28), 0.4)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.yaml").write_text("{}\n")
    for name in ("last.pt", "best.pt"):
        save_checkpoint(folder / name, {"model": model.state_dict(),
                                        "masks": masks.state_dict(),
                                        "config": config_to_dict(cfg)})
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize("name", ["best.pt", "last.pt", "config.yaml", "epoch-003.pt"])
@pytest.mark.parametrize("force", [False, True])
def test_the_runs_own_files_are_never_overwritten(run: Path, name: str, force: bool,
                                                  capsys: pytest.CaptureFixture) -> None:
    before = _files(run)
    extra = ["--force"] if force else []
    assert main(["compact", str(run), "--out", str(run / name), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "files of the run" in err and "compact.pt" in err
    assert _files(run) == before


def test_an_existing_file_needs_force(run: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    mine = tmp_path / "model.pt"
    mine.write_bytes(b"my own model")
    assert main(["compact", str(run), "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err and err.count("\n") == 1
    assert mine.read_bytes() == b"my own model"
    assert main(["compact", str(run), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["compact", str(run), "--out", str(mine), "--force"]) == 0
    assert isinstance(load_compacted(mine), torch.nn.Module)
    assert main(["compact", str(run), "--out", str(run / "compact.pt")]) == 0


def test_a_corrupted_compacted_file_is_refused(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "small.pt"
    assert main(["compact", str(run), "--out", str(out)]) == 0
    _flip_tensor_byte(out)
    with pytest.raises(CheckpointError, match="fails its checksum"):
        load_compacted(out)
