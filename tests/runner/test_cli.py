"""The devprune CLI end to end on the synthetic dataset: every contract file of a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from devprune.cli import main
from devprune.runner.presets import list_presets

CONTRACT_FILES = ["config.yaml", "metrics.jsonl", "summary.json", "last.pt", "best.pt",
                  "report.md", "accuracy_connectivity.png", "units.png"]


def _train(config: Path, out: Path, *extra: str) -> int:
    return main(["train", str(config), "--out", str(out), "--quiet", *extra])


def test_train_eval_report_produce_the_contract(tmp_path: Path, tiny_yaml: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    assert _train(tiny_yaml, run, "--set", "train.epochs=2", "run.keep=1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("epoch   1/2  loss") and "test" in lines[0]
    assert lines[-1].startswith("done: final test")
    for name in CONTRACT_FILES:
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    assert sorted(p.name for p in run.glob("epoch-*.pt")) == ["epoch-002.pt"]

    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["epochs"] == 2 and saved["data"]["name"] == "synthetic"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1]
    for key in ("train_loss", "val_accuracy", "test_accuracy", "connectivity", "layers",
                "pruning", "wall_time_s", "lr"):
        assert key in records[0], key
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final"]["test_accuracy"] == records[-1]["test_accuracy"]
    assert summary["best_val"]["epoch"] in (0, 1)
    assert summary["connectivity"] == 1.0  # method none: dense
    assert summary["params_nonzero"] <= summary["params_total"]
    assert summary["versions"]["torch"] and "units" in summary
    assert summary["versions"]["native_lif_kernel"] in ("active", "off", "unused")
    assert summary["final"]["test_accuracy"] > 0.2  # 10 classes: learnt beyond chance

    assert main(["eval", str(run)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert json.loads((run / "eval-best.json").read_text())["test_samples"] == 100

    report = (run / "report.md").read_text()
    assert "final test accuracy" in report and "units.png" in report


def test_report_compares_runs(tmp_path: Path, tiny_yaml: Path,
                              capsys: pytest.CaptureFixture) -> None:
    for name, lr in (("a", "0.01"), ("b", "0.003")):
        assert _train(tiny_yaml, tmp_path / name, "--set", "train.epochs=1",
                      f"train.lr={lr}") == 0
    out = tmp_path / "cmp"
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    assert (out / "accuracy_vs_connectivity.png").stat().st_size > 0
    table = (out / "report.md").read_text()
    assert "| a |" in table and "| b |" in table


def test_report_of_one_run_goes_to_out_and_describes_an_unfinished_run(
        tmp_path: Path, tiny_yaml: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    assert _train(tiny_yaml, run, "--set", "train.epochs=2") == 0
    (run / "summary.json").unlink()  # as while the run is still training
    capsys.readouterr()
    out = tmp_path / "reports" / "run"
    assert main(["report", str(run), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out / 'report.md'}"
    report = (out / "report.md").read_text()
    assert "method none (default) — unfinished: epoch 2 of 2" in report
    assert (out / "units.png").stat().st_size > 0
    (tmp_path / "file").write_text("x")
    assert main(["report", str(run), "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_user_errors_are_one_line_with_exit_code_2(tmp_path: Path, tiny_yaml: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    assert _train(tiny_yaml, tmp_path / "x", "--set", "train.optimiser=sgd") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("devprune: error: train.optimiser") and "'optimizer'" in err
    assert "\n" not in err
    assert main(["train", "no-such-preset"]) == 2
    assert main(["train"]) == 2
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_presets_command_lists_every_preset(capsys: pytest.CaptureFixture) -> None:
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name, description in list_presets().items():
        assert name in out and description, name


@pytest.mark.parametrize("command", ["train", "eval", "report"])
def test_help_teaches_with_examples(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "examples:" in capsys.readouterr().out
