"""``devprune export RUN --format nir``: a pruned run, a dense run, and the bad inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from devprune.cli import main
from tests.runner.tiny import TINY

nir = pytest.importorskip("nir")
pytest.importorskip("nirtorch")

DPAP = {"method": "dpap", "dpap": {"every_batches": 2, "start": 0, "e0": 0,
                                   "fc_neuron_reserve": 0.5, "fc_synapse_reserve": 0.5}}


def _train(tmp_path: Path, name: str, prune: dict | None = None,
           model: dict | None = None) -> Path:
    cfg: dict[str, Any] = yaml.safe_load(yaml.safe_dump(TINY))
    cfg["train"]["epochs"] = 2
    if prune:
        cfg["prune"] = prune
    if model:
        cfg["model"]["kwargs"].update(model)
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(cfg))
    run = tmp_path / name
    assert main(["train", str(config), "--out", str(run), "--quiet"]) == 0
    return run


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tmp_path_factory.mktemp("export"), "dpap", DPAP)


def test_export_writes_a_verified_nir_file_of_the_compacted_model(
        pruned_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "model.nir"
    assert main(["export", str(pruned_run), "--format", "nir", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "nirtorch: " in text and "(100.0000%)" in text
    graph = nir.read(out)
    assert int(graph.metadata["time_steps"]) == 2
    assert str(graph.metadata["encoding"]) == "direct"
    assert not bool(graph.metadata["time_steps_learnt"])
    hidden = graph.nodes["features.layer1.fc"]
    assert hidden.weight.shape[0] == int(hidden.metadata["units"]) < 24  # pruned + compacted
    assert float(hidden.metadata["connectivity_dense"]) < 1.0
    assert f"units {hidden.weight.shape[0]}/24" in text


def test_a_dense_run_exports_too(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = _train(tmp_path, "dense")
    out = tmp_path / "dense.nir"
    assert main(["export", str(run), "--out", str(out)]) == 0
    graph = nir.read(out)
    assert graph.nodes["features.layer1.fc"].weight.shape == (24, 784)
    assert "(100.0000%)" in capsys.readouterr().out


def _one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("devprune: error: ") and "\n" not in err, err
    return err


def test_unsupported_model_is_one_line_exit_2_and_no_file(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = _train(tmp_path, "soft", DPAP, model={"neuron_kwargs": {"reset": "soft"}})
    capsys.readouterr()
    out = tmp_path / "soft.nir"
    assert main(["export", str(run), "--out", str(out)]) == 2
    assert "soft reset" in _one_line_error(capsys)
    assert not out.exists() and not list(tmp_path.glob(".soft.nir*"))


def test_unwritable_path_is_one_line_exit_2(pruned_run: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert main(["export", str(pruned_run), "--out", str(blocker / "model.nir")]) == 2
    assert "cannot write" in _one_line_error(capsys)
    assert main(["export", str(pruned_run), "--out", str(tmp_path)]) == 2
    assert "is a directory" in _one_line_error(capsys)


def test_an_existing_file_is_replaced_only_with_force(pruned_run: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "model.nir"
    out.write_text("mine")
    assert main(["export", str(pruned_run), "--out", str(out)]) == 2
    assert "--force" in _one_line_error(capsys)
    assert out.read_text() == "mine"
    assert main(["export", str(pruned_run), "--out", str(out), "--force"]) == 0
    assert int(nir.read(out).metadata["time_steps"]) == 2
    capsys.readouterr()
    before = (pruned_run / "last.pt").read_bytes()
    assert main(["export", str(pruned_run), "--out", str(pruned_run / "last.pt"),
                 "--force"]) == 2
    assert "files of the run" in _one_line_error(capsys)
    assert (pruned_run / "last.pt").read_bytes() == before


def test_missing_run_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "m.nir")]) == 2
    _one_line_error(capsys)
    assert not (tmp_path / "m.nir").exists()


def test_a_learnt_number_of_time_steps_is_exported(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    """DPAP's time side shortens the simulation; the file runs the learnt length."""
    prune = {"method": "dpap", "dpap": {**DPAP["dpap"], "temporal": True,
                                        "time_offset": 100.0, "min_time_steps": 2}}
    cfg: dict[str, Any] = yaml.safe_load(yaml.safe_dump(TINY))
    cfg["train"]["epochs"] = 3
    cfg["model"]["time_steps"] = 4
    cfg["prune"] = prune
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(cfg))
    run = tmp_path / "temporal"
    assert main(["train", str(tmp_path / "t.yaml"), "--out", str(run), "--quiet"]) == 0
    out = tmp_path / "t.nir"
    assert main(["export", str(run), "--out", str(out), "--checkpoint", "last"]) == 0
    text = capsys.readouterr().out
    graph = nir.read(out)
    assert int(graph.metadata["time_steps"]) == 2
    assert bool(graph.metadata["time_steps_learnt"])
    assert int(graph.metadata["time_steps_configured"]) == 4
    assert "time steps 2 (learnt; configured 4)" in text and "(100.0000%)" in text


def test_missing_nir_is_one_line_exit_2(pruned_run: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(__import__("sys").modules, "nir", None)  # import raises ImportError
    out = tmp_path / "m.nir"
    assert main(["export", str(pruned_run), "--out", str(out)]) == 2
    assert "pip install 'devprune[export]'" in _one_line_error(capsys)
    assert not out.exists()
