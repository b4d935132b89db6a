"""Checkpoints carry a checksum: bytes flipped on disk are detected at load, through the CLI
too; checkpoints written before the checksum existed still load."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest
import torch

from devprune.cli import main
from devprune.errors import CheckpointError
from devprune.runner import checkpoint as ckpt
from devprune.utils.checksum import payload_digest


def _flip_tensor_byte(path: Path, member_suffix: str = "", at: int = 100) -> None:
    """Flip one bit inside the largest tensor record (torch does not check zip CRCs)."""
    with zipfile.ZipFile(path) as archive:
        records = [i for i in archive.infolist() if "/data/" in i.filename
                   and i.filename.endswith(member_suffix)]
        record = max(records, key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack_from("<HH", raw, record.header_offset + 26)
    start = record.header_offset + 30 + name_len + extra_len
    raw[start + min(at, record.file_size - 1)] ^= 0x10
    path.write_bytes(bytes(raw))


def _payload() -> dict:
    model = torch.nn.Linear(50, 20)
    return {"model": model.state_dict(), "epochs_done": 3, "best": {"epoch": 1, "acc": 0.5},
            "rng": {"python": [3, [1, 2, 3], None]}, "config": {"train": {"lr": 0.01}},
            "config_hash": "abc"}


def test_checksum_is_stable_and_sensitive() -> None:
    payload = _payload()
    assert payload_digest(payload) == payload_digest(_payload() | {"model": payload["model"]})
    changed = dict(payload, epochs_done=4)
    assert payload_digest(changed) != payload_digest(payload)
    weights = {k: v.clone() for k, v in payload["model"].items()}
    weights["weight"][0, 0] = torch.nextafter(weights["weight"][0, 0], torch.tensor(9.0))
    assert payload_digest(dict(payload, model=weights)) != payload_digest(payload)


def test_a_flipped_byte_is_detected_at_load(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(path, _payload())
    loaded = ckpt.load_checkpoint(path)
    assert loaded["checksum"].startswith("sha256:") and loaded["epochs_done"] == 3
    _flip_tensor_byte(path)
    torch.load(path, weights_only=True)  # torch itself does not notice
    with pytest.raises(CheckpointError, match=r"last\.pt fails its checksum"):
        ckpt.load_checkpoint(path)


def test_checkpoints_without_a_checksum_still_load(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    torch.save({"format": ckpt.FORMAT, "format_version": ckpt.FORMAT_VERSION, **_payload()},
               path)
    assert ckpt.load_checkpoint(path)["epochs_done"] == 3


def test_resume_and_eval_refuse_a_corrupted_run_checkpoint(
    tmp_path: Path, tiny_yaml: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    assert main(["train", str(tiny_yaml), "--out", str(run), "--quiet",
                 "--set", "train.epochs=1"]) == 0
    _flip_tensor_byte(run / "last.pt", at=7)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    assert main(["train", str(tiny_yaml), "--out", str(run), "--resume", "--quiet",
                 "--set", "train.epochs=2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "last.pt fails its checksum" in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    assert main(["eval", str(run), "--checkpoint", "last"]) == 2
    assert "fails its checksum" in capsys.readouterr().err


def test_any_flipped_bit_is_a_clear_error_or_an_unchanged_load(tmp_path: Path) -> None:
    """Every 7th byte of a small checkpoint, one bit flipped: never a traceback, never a load
    with other values than were saved."""
    import warnings

    path, damaged = tmp_path / "x.pt", tmp_path / "damaged.pt"
    ckpt.save_checkpoint(path, _payload())
    original = ckpt.load_checkpoint(path)
    raw = path.read_bytes()
    outcomes = {"refused": 0, "loaded": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about odd pickle protocols
        for position in range(0, len(raw), 7):
            flipped = bytearray(raw)
            flipped[position] ^= 0x10
            damaged.write_bytes(bytes(flipped))
            try:
                loaded = ckpt.load_checkpoint(damaged)
            except CheckpointError as err:
                assert "\n" not in str(err)
                outcomes["refused"] += 1
                continue
            outcomes["loaded"] += 1
            assert payload_digest(loaded) == payload_digest(original) or "checksum" not in loaded
    assert outcomes["refused"] > outcomes["loaded"]


def test_resume_refuses_an_incomplete_checkpoint(tmp_path: Path, tiny_yaml: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    assert main(["train", str(tiny_yaml), "--out", str(run), "--quiet",
                 "--set", "train.epochs=1"]) == 0
    payload = ckpt.load_checkpoint(run / "last.pt")
    del payload["optimizer"]
    ckpt.save_checkpoint(run / "last.pt", payload)  # a valid checksum over an incomplete one
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--set", "train.epochs=2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lacks ['optimizer']" in err
