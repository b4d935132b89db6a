"""In-training compaction (train.compact_every): a DPAP run whose model is shrunk physically
at epoch ends logs what the masked run logs, resumes to the uninterrupted run, and its
checkpoints work with eval / compact; methods that cannot shrink are refused."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import yaml

from devprune.compact.live import Keep, expand_tensor, slice_tensor
from devprune.errors import ConfigError
from devprune.runner.checkpoint import load_checkpoint
from devprune.runner.config import config_from_dict
from devprune.runner.metrics import read_metrics
from devprune.runner.train import train
from tests.runner.tiny import TINY

# A DPAP step every 2 batches from the first one, small reserves: units of the hidden layer
# die in every epoch, so each epoch end shrinks the model.
DPAP = {"method": "dpap", "dpap": {"every_batches": 2, "start": 0, "e0": 0,
                                   "fc_neuron_reserve": 1.0, "fc_synapse_reserve": 1.0}}
NOT_LOGGED_ALIKE = {"epoch_time_s", "wall_time_s", "compaction"}


def _raw(every: int, optimizer: str = "adam", epochs: int = 4, **dpap: Any) -> dict[str, Any]:
    raw = yaml.safe_load(yaml.safe_dump(TINY))
    raw["train"].update(threads=1, epochs=epochs, optimizer=optimizer, compact_every=every)
    if optimizer == "sgd":
        raw["train"].update(lr=0.1, momentum=0.9, nesterov=True)
    raw["prune"] = yaml.safe_load(yaml.safe_dump(DPAP))
    raw["prune"]["dpap"].update(dpap)
    return raw


def _run(raw: dict[str, Any], out: Path, **kwargs: Any) -> list[dict[str, Any]]:
    train(config_from_dict(raw), out, quiet=True, log=lambda _: None, **kwargs)
    return read_metrics(out / "metrics.jsonl")


def _assert_close(a: Any, b: Any, path: str = "") -> None:
    """Equal records; floats to 1e-6 relative (float rounding of a smaller matmul)."""
    if isinstance(a, dict):
        keys = (set(a) | set(b)) - NOT_LOGGED_ALIKE
        for key in keys:
            assert key in a and key in b, f"{path}.{key} missing on one side"
            _assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_shrunk_run_logs_what_the_masked_run_logs(tmp_path: Path, optimizer: str) -> None:
    masked = _run(_raw(0, optimizer), tmp_path / "masked")
    shrunk = _run(_raw(1, optimizer), tmp_path / "shrunk")
    # the run really shrank, more than once, and kept pruning afterwards
    shrinks = [r["compaction"] for r in shrunk if "compaction" in r]
    assert len(shrinks) >= 2 and all(s["params_after"] < s["params_before"] for s in shrinks)
    assert shrunk[-1]["connectivity"] < shrunk[0]["connectivity"]
    # losses, accuracies, connectivity, units, the static and workload tables, DPAP's events
    for a, b in zip(masked, shrunk, strict=True):
        _assert_close(a, b, f"epoch {a['epoch']}")
    payload = load_checkpoint(tmp_path / "shrunk" / "last.pt")
    hidden = payload["model"]["features.layer1.fc.weight"]
    alive = shrunk[-1]["layers"]["features.layer1.fc"]["units_alive"]
    assert hidden.shape[0] == alive < 24  # only the living units are left
    assert payload["compaction"]["shrinks"] == len(shrinks)


def test_windowed_statistics_and_slot_thresholds_shrink_exactly(tmp_path: Path) -> None:
    """DPAP's per-step accumulation windows and per-slot BCM threshold follow the shrink."""
    settings = {"accumulation": "per_step", "theta": "per_slot"}
    masked = _run(_raw(0, epochs=3, **settings), tmp_path / "masked")
    shrunk = _run(_raw(1, epochs=3, **settings), tmp_path / "shrunk")
    assert any("compaction" in r for r in shrunk)
    for a, b in zip(masked, shrunk, strict=True):
        _assert_close(a, b, f"epoch {a['epoch']}")


def test_resume_after_a_shrink_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    raw = _raw(1)
    whole = _run(raw, tmp_path / "whole")
    _run(raw, tmp_path / "cut", stop_after=2)
    assert "compaction" in load_checkpoint(tmp_path / "cut" / "last.pt")
    resumed = _run(raw, tmp_path / "cut", resume=True)
    for a, b in zip(whole, resumed, strict=True):
        _assert_close(a, b, f"epoch {a['epoch']}")
    one, two = (load_checkpoint(tmp_path / d / "last.pt") for d in ("whole", "cut"))
    for key, value in one["model"].items():
        assert torch.allclose(value, two["model"][key], atol=1e-7), key
    assert one["compaction"]["shrinks"] == two["compaction"]["shrinks"]


def assert_same_evaluation(masked: dict[str, Any], shrunk: dict[str, Any],
                           tmp_path: Path) -> None:
    """Train both configs; `devprune eval` of their last checkpoints reads alike."""
    from devprune.runner.evaluate import evaluate_run

    _run(masked, tmp_path / "masked")
    _run(shrunk, tmp_path / "shrunk")
    one, two = evaluate_run(tmp_path / "masked", "last"), evaluate_run(tmp_path / "shrunk", "last")
    for key in ("test_accuracy", "test_loss", "connectivity", "params_nonzero", "params_total"):
        assert one[key] == pytest.approx(two[key], rel=1e-6), key


def test_eval_and_compact_read_a_shrunk_checkpoint(tmp_path: Path) -> None:
    from devprune.runner.runmodel import load_run

    assert_same_evaluation(_raw(0, epochs=2), _raw(1, epochs=2), tmp_path)
    model_m, masks_m, example = load_run(tmp_path / "masked")[:3]
    model_s, masks_s = load_run(tmp_path / "shrunk")[:2]
    for name in masks_m.names():  # full-size masks, and the same ones
        assert torch.equal(masks_m[name], masks_s[name])
    assert torch.allclose(model_m(example), model_s(example))


@pytest.mark.parametrize(("prune", "reason"), [
    ({"method": "magnitude", "magnitude": {"target": 0.3, "start": 0, "end": 2}},
     "does not declare"),
    ({"method": "dpap", "mode": "reference"}, "reference mode"),
    ({"method": "dpap", "dpap": {"normalise_over": "all"}}, "normalise_over=all"),
])
def test_methods_that_cannot_shrink_are_refused(tmp_path: Path, prune: dict[str, Any],
                                                 reason: str) -> None:
    raw = _raw(1)
    raw["prune"] = prune
    with pytest.raises(ConfigError, match=f"train.compact_every=1.*{reason}"):
        _run(raw, tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_dense_training_ignores_compact_every(tmp_path: Path) -> None:
    """Nothing is ever removed from a dense run: compact_every is a no-op there (so a preset
    that compacts still runs its dense twin with prune.method=none)."""
    plain, asked = _raw(0, epochs=2), _raw(1, epochs=2)
    plain["prune"] = asked["prune"] = {"method": "none"}
    for a, b in zip(_run(plain, tmp_path / "plain"), _run(asked, tmp_path / "asked"),
                    strict=True):
        _assert_close(a, b, f"epoch {a['epoch']}")
        assert "compaction" not in b


def test_the_quick_dpap_preset_compacts_and_its_twins_do_not() -> None:
    from devprune.runner.config import load_config

    assert load_config("mnist-mlp-dpap-quick").train.compact_every == 1
    assert load_config("derived-events-snn-sdsnn-quick").train.compact_every == 1
    # presets whose measured compaction was not both faster and equal to the masked run
    # (docs/COMPACT.md#in-training-compaction) or that cannot compact (reference mode)
    assert load_config("mnist-snn-small-dpap-cpu").train.compact_every_batches == 0
    for preset in ("mnist-mlp-dpap-quick-reference", "fashion-mlp-dpap-quick",
                   "fashion-mlp-dpap-quick-reference", "mnist-snn-small-dpap-cpu"):
        assert load_config(preset).train.compact_every == 0, preset


# ------------------------------------------------------------------------------------------
# A pruned layer reading a pruned layer: the shrink removes its input columns too
# ------------------------------------------------------------------------------------------
# linear reads conv: snn-small's fc1 reads conv2 (8 filters x 49 columns after pool+flatten)
CONV = {"name": "snn-small", "time_steps": 2,
        "kwargs": {"channels": [4, 8], "hidden": 24, "encoder": "direct"}}
CONV_DPAP = {"include": ["features.conv2.conv", "classifier.fc1.fc"], "conv_reserve": 3.0,
             "fc_neuron_reserve": 3.0, "fc_synapse_reserve": 3.0}
READER = {"linear-reads-conv": "classifier.fc1.fc", "linear-reads-linear": "features.layer2.fc"}


def _reading(shape: str, every: int, optimizer: str = "adam", every_batches: int = 0,
             **dpap: Any) -> dict[str, Any]:
    """The tiny run with a pruned layer reading a pruned layer (``shape``, see READER)."""
    if shape == "linear-reads-conv":
        raw = _raw(every, optimizer, epochs=3, **{**CONV_DPAP, **dpap})
        raw["model"] = yaml.safe_load(yaml.safe_dump(CONV))
        if optimizer == "sgd":
            raw["train"]["lr"] = 0.5  # lr 0.1 leaves this net's output silent
    else:
        raw = _raw(every, optimizer, epochs=3, **dpap)
        raw["model"]["kwargs"]["hidden"] = [24, 16]
    raw["train"]["compact_every_batches"] = every_batches
    return raw


def _full_order(payload: dict[str, Any], name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept rows, columns) in the architecture's numbering of a shrunk checkpoint's DPAP
    synapse tensors of ``name``: the kept columns, then the removed ones as kept."""
    keep = payload["compaction"]["keep"]
    removed = payload["pruner"]["masks"]["removed_columns"][name]["index"]
    return keep["keep_out"][name], torch.cat([keep["keep_in"][name], removed])


def _assert_same_pruner_state(masked: dict[str, Any], shrunk: dict[str, Any],
                              reader: str) -> None:
    """The shrunk run's reserves and masks are the masked run's, removed columns included."""
    rows, cols = _full_order(shrunk, reader)
    one, two = masked["pruner"], shrunk["pruner"]
    full = one["synapse_reserve"][reader][rows][:, cols]
    assert torch.allclose(full, two["synapse_reserve"][reader], rtol=1e-6, atol=1e-6)
    for key, value in two["unit_reserve"].items():
        kept = shrunk["compaction"]["keep"]["keep_out"][key]
        assert torch.allclose(one["unit_reserve"][key][kept], value, rtol=1e-6, atol=1e-6)
    mask = one["masks"]["masks"][reader][rows][:, cols]
    removed = two["masks"]["removed_columns"][reader]["mask"]
    assert torch.equal(mask, torch.cat([two["masks"]["masks"][reader], removed], 1))


@pytest.mark.parametrize("shape", sorted(READER))
@pytest.mark.parametrize(("accumulation", "optimizer"), [
    ("per_step", "adam"), ("per_step", "sgd"), ("cumulative", "adam"), ("cumulative", "sgd")])
def test_removing_input_columns_of_a_pruned_layer_is_exact(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: str, accumulation: str,
        optimizer: str) -> None:
    """The shrink removes the reader's columns of dead units; their synapses live on in
    DPAP (percentiles, row sums, reserves, masks) as on the masked run."""
    from devprune.compact.live import LiveMaskSet

    pruned_removed = []
    original = LiveMaskSet.prune_removed
    monkeypatch.setattr(LiveMaskSet, "prune_removed", lambda self, name, remove: (
        pruned_removed.append(original(self, name, remove)) or pruned_removed[-1]))
    masked = _run(_reading(shape, 0, optimizer, accumulation=accumulation),
                  tmp_path / "masked")
    ran_masked = len(pruned_removed)
    shrunk = _run(_reading(shape, 1, optimizer, accumulation=accumulation),
                  tmp_path / "shrunk")
    assert ran_masked == 0 and pruned_removed  # the removed columns' synapses were stepped
    # and lost entries; a cumulative window froze at a dead column's (often high) values,
    # where they may all survive
    assert sum(pruned_removed) > 0 or accumulation == "cumulative"
    for a, b in zip(masked, shrunk, strict=True):
        _assert_close(a, b, f"epoch {a['epoch']}")
    reader = READER[shape]
    payload = load_checkpoint(tmp_path / "shrunk" / "last.pt")
    full_columns = load_checkpoint(tmp_path / "masked" / "last.pt")["model"][
        f"{reader}.weight"].shape[1]
    assert payload["model"][f"{reader}.weight"].shape[1] < full_columns  # columns went
    _assert_same_pruner_state(load_checkpoint(tmp_path / "masked" / "last.pt"), payload,
                              reader)


def _training_view(record: dict[str, Any]) -> dict[str, Any]:
    """What training and DPAP decided in an epoch record: losses, accuracies, the prunable
    connectivity, DPAP's events, units alive per layer and fc1's (the tracked layer's) row."""
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
            "test_accuracy", "connectivity", "pruning")
    return {**{k: record[k] for k in keys},
            "units": {n: v["units_alive"] for n, v in record["layers"].items()},
            "fc1": record["layers"]["classifier.fc1.fc"]}


def test_unread_units_of_an_untracked_layer_go_with_their_dead_columns(tmp_path: Path) -> None:
    """The derived-event preset's case: DPAP prunes only fc1's synapses, so a conv2 channel
    whose fc1 columns all died is read by nobody. conv2 is not DPAP's, and the columns were
    synapses only (no row sum reads them): the shrink removes the channel, and training goes
    on exactly as on the masked run. The all-layer counts (non-zero weights, the static and
    workload tables) differ: the masked run still holds and runs the unread channel's unused
    weights, the shrunk run does not."""
    def raw(every: int) -> dict[str, Any]:
        run = _raw(every, epochs=3, include=["classifier.fc1.fc"],
                   linear_granularity="synapse", fc_synapse_reserve=0.5,
                   fc_synapse_offset=1.4)
        run["model"] = yaml.safe_load(yaml.safe_dump(CONV))
        return run

    masked, shrunk = _run(raw(0), tmp_path / "masked"), _run(raw(1), tmp_path / "shrunk")
    for a, b in zip(masked, shrunk, strict=True):
        _assert_close(_training_view(a), _training_view(b), f"epoch {a['epoch']}")
        assert b["params_nonzero"] <= a["params_nonzero"]
        work = [r["workload"]["connections"]["features.conv2.conv"]["Effective_ACs"]
                for r in (a, b)]
        assert work[1] <= work[0]
    conv2 = load_checkpoint(tmp_path / "shrunk" / "last.pt")["model"][
        "features.conv2.conv.weight"]
    alive = masked[-1]["layers"]["features.conv2.conv"]["units_alive"]
    assert conv2.shape[0] == max(alive, 1) < CONV["kwargs"]["channels"][1]


def test_a_row_sum_over_the_columns_keeps_unread_units_in_training(tmp_path: Path) -> None:
    """With fc1's neurons pruned too, their importance sums every column, so the unread
    conv2 channel's columns (still changing on the masked run) must stay."""
    from devprune.pruning.base import build_pruner

    model = build_case_model()
    x = torch.rand(2, 1, 28, 28)
    synapses = build_pruner("dpap", model, x, {"include": ["classifier.fc1.fc"],
                                               "linear_granularity": "synapse"})
    both = build_pruner("dpap", build_case_model(), x, {"include": ["classifier.fc1.fc"]})
    assert "features.conv2.conv" in synapses.shrinkable_unread()
    assert "features.conv2.conv" not in both.shrinkable_unread()
    assert "classifier.fc1.fc" not in synapses.shrinkable_unread()  # tracked


def build_case_model() -> torch.nn.Module:
    from devprune.models.registry import build_model

    return build_model("snn-small", in_shape=(1, 28, 28), num_classes=10, time_steps=2,
                       **CONV["kwargs"])


def test_resume_after_removing_input_columns(tmp_path: Path) -> None:
    raw = _reading("linear-reads-conv", 1, accumulation="cumulative")
    whole = _run(raw, tmp_path / "whole")
    _run(raw, tmp_path / "cut", stop_after=2)
    cut = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert "removed_columns" in cut["pruner"]["masks"]  # the cut is after a column removal
    resumed = _run(raw, tmp_path / "cut", resume=True)
    for a, b in zip(whole, resumed, strict=True):
        _assert_close(a, b, f"epoch {a['epoch']}")
    one, two = (load_checkpoint(tmp_path / d / "last.pt") for d in ("whole", "cut"))
    _assert_close_tensors(one["model"], two["model"])
    _assert_close_tensors(one["pruner"], two["pruner"])  # removed columns' state included


def _assert_close_tensors(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for key in a:
            _assert_close_tensors(a[key], b[key], f"{path}.{key}")
    elif torch.is_tensor(a):
        assert a.shape == b.shape, path
        assert torch.allclose(a.double(), b.double(), atol=1e-7), path


def test_shrinking_within_epochs_after_each_structural_step(tmp_path: Path) -> None:
    """train.compact_every_batches=2 with a DPAP step every 2 batches: the model shrinks
    during the epochs (5 batches each), logs what the masked run logs, and resumes."""
    masked = _run(_reading("linear-reads-conv", 0), tmp_path / "masked")
    raw = _reading("linear-reads-conv", 0, every_batches=2)
    shrunk = _run(raw, tmp_path / "shrunk")
    for a, b in zip(masked, shrunk, strict=True):
        _assert_close(a, b, f"epoch {a['epoch']}")
    shrinks = [r["compaction"]["shrinks"] for r in shrunk if "compaction" in r]
    assert shrinks and shrinks[-1] > len(shrinks)  # more shrinks than epochs that shrank
    _run(raw, tmp_path / "cut", stop_after=2)
    resumed = _run(raw, tmp_path / "cut", resume=True)
    for a, b in zip(shrunk, resumed, strict=True):
        _assert_close(a, b, f"epoch {a['epoch']}")
    one, two = (load_checkpoint(tmp_path / d / "last.pt") for d in ("shrunk", "cut"))
    assert one["compaction"]["shrinks"] == two["compaction"]["shrinks"]
    for key, value in one["model"].items():
        assert torch.allclose(value, two["model"][key], atol=1e-7), key


@pytest.mark.parametrize("method", ["dpap", "sdsnn"])
def test_a_recurrent_pruned_layer_is_refused(method: str) -> None:
    from devprune.pruning.dpap import DPAPConfig, DPAPPruner
    from devprune.pruning.sdsnn import SDSNNConfig, SDSNNPruner

    cls, config = {"dpap": (DPAPPruner, DPAPConfig()),
                   "sdsnn": (SDSNNPruner, SDSNNConfig(end=40))}[method]
    pruner = cls.__new__(cls)  # only the refusal's inputs
    pruner.cfg = config
    pruner.masks = SimpleNamespace(names=lambda: ["rec"])
    pruner.structure = SimpleNamespace(recurrent_partners=lambda name: [name, "rec.w"])
    reason = pruner.compaction_refusal()
    assert "recurrent" in reason and f"prune.{method}.exclude" in reason


def test_compact_every_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"train\.compact_every"):
        config_from_dict(_raw(-1))
    raw = _raw(0)
    raw["train"]["compact_every_batches"] = -2
    with pytest.raises(ConfigError, match=r"train\.compact_every_batches"):
        config_from_dict(raw)


def test_a_refusal_names_the_sub_epoch_cadence(tmp_path: Path) -> None:
    raw = _raw(0)
    raw["train"]["compact_every_batches"] = 2
    raw["prune"] = {"method": "sdsnn"}
    with pytest.raises(ConfigError, match=r"train\.compact_every_batches=2: .*"
                                          r"set train\.compact_every_batches=0"):
        _run(raw, tmp_path / "run")


def test_keep_composes_and_expand_inverts_slice() -> None:
    first = Keep({"a": torch.tensor([0, 2, 3, 5])}, {"a": torch.tensor([1, 2, 4])})
    later = Keep({"a": torch.tensor([1, 3])}, {"a": torch.tensor([0, 2])})
    both = first.then(later)
    assert both.keep_out["a"].tolist() == [2, 5] and both.keep_in["a"].tolist() == [1, 4]
    full = torch.arange(6 * 5, dtype=torch.float).reshape(6, 5)
    ops = [(0, both.keep_out["a"]), (1, both.keep_in["a"])]
    small = slice_tensor(full, ops)
    assert small.tolist() == [[11.0, 14.0], [26.0, 29.0]]
    back = expand_tensor(small, ops, full.shape)
    assert torch.equal(back[[2, 5]][:, [1, 4]], small) and int((back != 0).sum()) == 4


# ------------------------------------------------------------------------------------------
# Two processes (torchrun, gloo): every rank shrinks the same way
# ------------------------------------------------------------------------------------------
RANK_DUMP = """
import importlib
import sys
from pathlib import Path
import torch
from devprune.cli import main

T = importlib.import_module("devprune.runner.train")  # the module, not the function

out = Path(sys.argv[2])
original = T.finish


def finish(s, log=print):  # every rank writes its own model and optimizer state
    state = {"model": {k: v.clone() for k, v in s.model.state_dict().items()},
             "optimizer": s.optimizer.state_dict(), "shrinks": s.compaction.shrinks}
    torch.save(state, out.parent / f"rank{s.rank}.pt")
    return original(s, log=log)


T.finish = finish
sys.exit(main(["train", sys.argv[1], "--out", str(out), "--quiet"]))
"""


def train_two_ranks(raw: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    """Train ``raw`` with torchrun on 2 processes into ``tmp_path / "two"``; returns each
    rank's final model, optimizer state and shrink count (``RANK_DUMP``), after checking
    that the ranks' models and optimizer states are identical."""
    import os
    import subprocess
    import sys

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(raw))
    script = tmp_path / "dump.py"
    script.write_text(RANK_DUMP)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", str(script), str(config), str(tmp_path / "two")]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for key, value in ranks[0]["model"].items():
        assert torch.equal(value, ranks[1]["model"][key]), key
    for index, state in ranks[0]["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, ranks[1]["optimizer"]["state"][index][name]), name
    return ranks


NEEDS_GLOO = pytest.mark.skipif(not (torch.distributed.is_available()
                                     and torch.distributed.is_gloo_available()),
                                reason="torch.distributed with gloo is not built")


@NEEDS_GLOO
@pytest.mark.parametrize("hidden", [[24], [24, 16]])  # [24, 16]: layer2 loses columns too
def test_two_processes_shrink_to_identical_models(tmp_path: Path, hidden: list[int]) -> None:
    raw = _raw(1, epochs=3)
    raw["model"]["kwargs"]["hidden"] = hidden
    ranks = train_two_ranks(raw, tmp_path)
    assert ranks[0]["shrinks"] == ranks[1]["shrinks"] >= 2
    assert ranks[0]["model"]["features.layer1.fc.weight"].shape[0] < 24
    if len(hidden) > 1:  # the second hidden layer lost the columns of dead first-layer units
        assert ranks[0]["model"]["features.layer2.fc.weight"].shape[1] < 24
    # and the two-process shrunk run is the one-process shrunk run
    one = _run(raw, tmp_path / "one")
    two = read_metrics(tmp_path / "two" / "metrics.jsonl")
    for a, b in zip(one, two, strict=True):
        assert a["connectivity"] == b["connectivity"] and a["test_accuracy"] == b["test_accuracy"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)


def test_benchmark_script_runs_on_a_tiny_config(tmp_path: Path) -> None:
    from benchmarks.bench_train_compact import main as bench

    raw = _raw(0, epochs=2)
    config = tmp_path / "tiny-dpap.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = bench(["--preset", str(config), "--rounds", "2", "--out", str(tmp_path / "res"),
                    "--name", "tiny"])
    assert set(result["ratios"]) == {"compact/masked", "compact/dense", "masked/dense"}
    assert all(r["min"] <= r["median"] <= r["max"] for r in result["ratios"].values())
    assert set(result["cpu_ratios"]) == set(result["ratios"])
    assert all(r["median"] > 0 for r in result["cpu_ratios"].values())
    assert result["compact_equals_masked"]
    assert result["final"]["dense"]["connectivity"] == 1.0
    assert result["final"]["compact"]["connectivity"] < 1.0
    assert (tmp_path / "res" / "train_compact-tiny.json").is_file()
    assert "compact/masked" in (tmp_path / "res" / "train_compact-tiny.md").read_text()


def test_commands_work_on_a_shrunk_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """devprune eval / measure / report / compact on a run whose last.pt is shrunk."""
    from devprune.cli import main
    from devprune.compact import load_compacted

    run = tmp_path / "shrunk"
    _run(_raw(1, epochs=2), run)
    hidden = load_checkpoint(run / "last.pt")["model"]["features.layer1.fc.weight"].shape[0]
    assert hidden < 24
    for command in (["eval", str(run)], ["measure", str(run)], ["report", str(run)],
                    ["compact", str(run), "--out", str(tmp_path / "small.pt")]):
        assert main(command) == 0, command
    printed = capsys.readouterr().out
    assert f"24 -> {hidden}" in printed  # compact starts from the full architecture
    small = load_compacted(tmp_path / "small.pt")
    assert small.features.layer1.fc.weight.shape[0] == hidden
    assert (run / "report.md").is_file() and (run / "eval-best.json").is_file()


def test_the_epoch_line_says_when_the_model_shrank() -> None:
    from devprune.runner.train import epoch_line

    record = {"epoch": 1, "train_loss": 0.5, "val_accuracy": None, "test_accuracy": 0.9,
              "connectivity": 0.2, "layers": {"fc1": {"units_alive": 253, "units_total": 800}},
              "wall_time_s": 12.0, "pruning": {},
              "compaction": {"shrinks": 1, "params_before": 636010, "params_after": 208300}}
    assert "  shrunk 636,010 -> 208,300 params  12s" in epoch_line(record, 3)
    del record["compaction"]
    assert "shrunk" not in epoch_line(record, 3)
