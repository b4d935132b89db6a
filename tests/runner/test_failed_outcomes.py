"""Outcomes that are failures are not reported as success: a spiking run whose weights run
away stops with 'training diverged' (keeping the last good checkpoint), a layer pruned to
nothing is warned about and ends the CLI with exit code 3, and the summary pairs each
accuracy with the connectivity of the same epoch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from devprune.cli import main
from devprune.errors import TrainingDivergedError
from devprune.runner import checkpoint as ckpt
from devprune.runner.train import WEIGHT_LIMIT, check_runaway, check_weights

ARGS = ["--quiet", "--set", "train.threads=1", "prune.method=dpap"]


def test_a_diverging_lr_on_a_spiking_run_is_an_error_not_chance_accuracy(
    tmp_path: Path, tiny_yaml: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    assert main(["train", str(tiny_yaml), *ARGS, "train.lr=1e30", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "training diverged" in err and "train.lr" in err, err
    assert "nothing was checkpointed" in err
    assert not (run / "summary.json").exists() and not (run / "last.pt").exists()


def test_divergence_after_a_good_epoch_keeps_its_checkpoint(
    tmp_path: Path, tiny_yaml: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    # epoch 1 trains at 0.01; the step schedule multiplies the lr by 1e30 from epoch 2 on
    sets = ["train.schedule=step", "train.milestones=[1]", "train.gamma=1e30"]
    assert main(["train", str(tiny_yaml), *ARGS, *sets, "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "training diverged" in err and "after epoch 2" in err and "last.pt" in err, err
    payload = ckpt.load_checkpoint(run / "last.pt")
    assert payload["epochs_done"] == 1
    assert all(bool(torch.isfinite(v).all()) and float(v.abs().max()) < 1e3
               for v in payload["model"].values() if v.is_floating_point())
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and not (run / "summary.json").exists()


def test_weights_running_away_at_chance_accuracy_is_divergence_too(
    tmp_path: Path, tiny_yaml: Path, capsys: pytest.CaptureFixture
) -> None:
    """lr=10 on the spiking MLP: finite weights, 100x larger after one epoch, chance accuracy
    (this ended 'done: final test 10.00%' with exit 0 before). SD-SNN this time."""
    run = tmp_path / "run"
    assert main(["train", str(tiny_yaml), "--quiet", "--set", "train.threads=1",
                 "prune.method=sdsnn", "train.lr=10", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "training diverged: epoch 1 grew the largest weight" in err, err
    assert "at chance" in err and err.count("\n") == 1


def test_check_runaway_needs_both_growth_and_chance_accuracy() -> None:
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(50.0)
    check_runaway(model, 0, 1.0, None, start_peak=0.1, accuracy=0.9, classes=10)  # learning
    check_runaway(model, 0, 1.0, None, start_peak=10.0, accuracy=0.1, classes=10)  # x5 only
    with pytest.raises(TrainingDivergedError, match=r"from 0\.1 to 50"):
        check_runaway(model, 0, 1.0, None, start_peak=0.1, accuracy=0.1, classes=10)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2 * WEIGHT_LIMIT])
def test_check_weights_names_the_parameter(value: float) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 2))
    check_weights(model, 0, 0.1)  # a sane model passes
    with torch.no_grad():
        model[1].weight[0, 1] = value
    with pytest.raises(TrainingDivergedError, match=r"parameter 1\.weight .* epoch 4"):
        check_weights(model, 3, 0.1)


def test_a_layer_pruned_to_nothing_warns_and_exits_3(
    tmp_path: Path, tiny_yaml: Path, shrink_method: str, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    sets = ["--set", "train.threads=1", f"prune.method={shrink_method}",
            "train.epochs=2", f"prune.{shrink_method}.fraction=1.0"]
    assert main(["train", str(tiny_yaml), *sets, "--out", str(run)]) == 3
    captured = capsys.readouterr()
    warning = [ln for ln in captured.out.splitlines() if ln.startswith("warning: epoch 2")]
    assert len(warning) == 1 and "features.layer1.fc" in warning[0], captured.out
    assert "run.allow_empty_layers" in captured.err and captured.err.count("\n") == 1
    summary = json.loads((run / "summary.json").read_text())
    assert summary["empty_layers"]["features.layer1.fc"] == 1
    allowed = tmp_path / "allowed"
    assert main(["train", str(tiny_yaml), *sets, "run.allow_empty_layers=true", "--quiet",
                 "--out", str(allowed)]) == 0
    assert "warning" not in capsys.readouterr().out


def test_summary_pairs_accuracy_and_connectivity_of_the_same_epoch(
    tmp_path: Path, tiny_yaml: Path, shrink_method: str
) -> None:
    run = tmp_path / "run"
    assert main(["train", str(tiny_yaml), "--quiet", "--set", "train.threads=1",
                 f"prune.method={shrink_method}", f"prune.{shrink_method}.start_epoch=0",
                 f"prune.{shrink_method}.fraction=0.5", "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    records = {r["epoch"]: r for r in map(json.loads,
                                          (run / "metrics.jsonl").read_text().splitlines())}
    for key in ("final", "best_val", "best_test_reference"):
        epoch = summary[key]["epoch"]
        assert summary[key]["connectivity"] == records[epoch]["connectivity"], key
        assert summary[key]["test_accuracy"] == records[epoch]["test_accuracy"], key
    assert summary["connectivity"] == summary["final"]["connectivity"]
    assert len({r["connectivity"] for r in records.values()}) == 3  # pruned every epoch


@pytest.mark.parametrize("method", ["dpap", "sdsnn", "magnitude", "random", "lth", "set",
                                    "rigl"])
def test_a_non_finite_pruning_constant_is_refused_from_python_too(method: str) -> None:
    """The CLI's config validator refuses them (tests/runner/test_bad_input_cli.py); a user's
    own loop calling build_pruner must not silently prune nothing either."""
    import dataclasses

    from devprune.errors import ConfigError
    from devprune.models import build_model
    from devprune.pruning import build_pruner
    from devprune.pruning.base import pruner_config_class

    model = build_model("snn-mlp", in_shape=(1, 28, 28), num_classes=10, time_steps=2)
    example = torch.rand(2, 1, 28, 28)
    floats = [f.name for f in dataclasses.fields(pruner_config_class(method))
              if f.type in (float, "float")] or ["target"]
    for name in floats:
        for bad in (float("nan"), float("inf")):
            with pytest.raises(ConfigError, match=rf"prune\.{method}\."):
                build_pruner(method, model, example, {name: bad})
