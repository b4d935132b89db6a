"""No file devprune reads can run code (issue 19): checkpoints and compacted models are read
weights-only, CIFAR pickles through a restricted unpickler, YAML with a safe loader, event
.npz files and the frame cache without pickles, and archives are never extracted outside
their target. Each hostile file would create a marker file if its code ran."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from devprune.cli import main
from devprune.errors import CheckpointError, DataError


class Payload:
    """Runs ``touch marker`` when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class ExecPayload(Payload):
    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "code-ran"
    yield path
    assert not path.exists(), "a file devprune read ran code"


@pytest.mark.parametrize("payload_cls", [Payload, ExecPayload])
def test_a_checkpoint_with_pickled_code_is_refused(tmp_path: Path, marker: Path,
                                                   payload_cls: type) -> None:
    from devprune.runner.checkpoint import load_checkpoint

    path = tmp_path / "last.pt"
    torch.save({"format": "devprune-run-checkpoint", "format_version": 1,
                "model": {"w": torch.zeros(2)}, "x": payload_cls(marker)}, path)
    with pytest.raises(CheckpointError, match="refuses to load"):
        load_checkpoint(path)


def test_a_run_whose_checkpoint_carries_code_is_refused_by_every_command(
    tmp_path: Path, marker: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("data: {name: synthetic}\n")
    for name in ("last.pt", "best.pt"):
        torch.save({"format": "devprune-run-checkpoint", "x": Payload(marker)}, run / name)
    for argv in (["eval", str(run)], ["compact", str(run), "--out", str(tmp_path / "s.pt")],
                 ["train", "--resume", "--out", str(run), "--quiet"]):
        assert main(argv) == 2, argv
        assert "refuses to load" in capsys.readouterr().err


def test_a_compacted_model_file_with_pickled_code_is_refused(tmp_path: Path,
                                                             marker: Path) -> None:
    from devprune.compact import load_compacted

    path = tmp_path / "small.pt"
    torch.save({"format": "devprune-compacted", "format_version": 1,
                "state_dict": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="corrupt or not a torch file"):
        load_compacted(path)


@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.system ['touch {m}']",
    "!!python/object/new:os.system ['touch {m}']",
    "!!python/name:os.system",
    "!!python/module:os",
])
def test_yaml_tags_that_build_python_objects_are_refused(
    tmp_path: Path, marker: Path, tag: str, capsys: pytest.CaptureFixture
) -> None:
    text = tag.format(m=marker)
    config = tmp_path / "evil.yaml"
    config.write_text(f"description: {text}\n")
    assert main(["train", str(config), "--out", str(tmp_path / "out")]) == 2
    assert "evil.yaml" in capsys.readouterr().err
    assert main(["train", "mnist-mlp-dense-quick", "--set", f"description={text}",
                 "--out", str(tmp_path / "out")]) == 2
    assert "--set description" in capsys.readouterr().err
    from devprune.runner.yamlio import yaml_load

    with pytest.raises(yaml.YAMLError, match="could not determine a constructor"):
        yaml_load(f"a: {text}")  # the safe loader has no constructor for python/* tags
    assert not (tmp_path / "out").exists()


def test_cifar_pickles_go_through_the_restricted_unpickler(tmp_path: Path,
                                                           marker: Path) -> None:
    from devprune.data.vision import load_cifar_batch

    for payload in (Payload(marker), ExecPayload(marker)):
        path = tmp_path / "data_batch_1"
        path.write_bytes(pickle.dumps({b"data": payload, b"labels": [0]}, protocol=2))
        with pytest.raises(DataError, match="refusing to load global"):
            load_cifar_batch(path, b"labels")


def test_event_npz_and_frame_cache_files_never_unpickle(tmp_path: Path, marker: Path) -> None:
    from devprune.data.events.cache import FrameCache
    from devprune.data.events.npz import read_event_npz

    hostile = np.array([Payload(marker)], dtype=object)
    npz = tmp_path / "rec.npz"
    np.savez(npz, t=hostile, x=hostile, y=hostile, p=hostile)
    with pytest.raises(DataError, match=r"rec\.npz"):
        read_event_npz(npz)
    cache = FrameCache(tmp_path / "cache", (2, 2))
    cache.folder.mkdir()
    np.savez(cache.path(0), index=hostile, key=hostile, frames=hostile)
    with pytest.raises(DataError, match=r"chunk_0000\.npz"):
        cache.load([0], ["k"])


def _tar(path: Path, members: dict[str, bytes], links: dict[str, str]) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)


def test_archive_members_outside_the_target_are_never_written(tmp_path: Path) -> None:
    from devprune.data.sources import SourceError, _extract_from_tar

    outside = tmp_path / "outside"
    out = tmp_path / "scratch" / "extracted"
    tarball = tmp_path / "pkg.tgz"
    _tar(tarball, {
        "package/data/../../../outside/evil": b"x",
        f"{outside}/absolute": b"x",
        "package/data/train-labels-idx1-ubyte": b"labels",
        "../outside/up": b"x",
    }, links={"package/data/t10k-labels-idx1-ubyte": str(outside / "linked"),
              "package/data/train-images-idx3-ubyte": "../../../../outside/rel-link"})
    found = _extract_from_tar(tarball, "package/data",
                              ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                               "t10k-labels-idx1-ubyte"], out)
    assert found == {"train-labels-idx1-ubyte": out / "train-labels-idx1-ubyte"}
    assert sorted(p.name for p in out.iterdir()) == ["train-labels-idx1-ubyte"]
    assert not outside.exists()
    written = {p for p in tmp_path.rglob("*") if p.is_file() or p.is_symlink()}
    assert written == {tarball, out / "train-labels-idx1-ubyte"}
    only_evil = tmp_path / "evil.tgz"
    _tar(only_evil, {"package/data/../../escape": b"x"}, links={})
    with pytest.raises(SourceError, match="no IDX files"):
        _extract_from_tar(only_evil, "package/data", ["train-labels-idx1-ubyte"],
                          tmp_path / "scratch2")
    assert not (tmp_path / "escape").exists() and not outside.exists()
