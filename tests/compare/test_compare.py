"""``devprune compare``: grid validation, a real tiny grid (resumable, matched targets), the
table and plots, and the one-line refusals of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from devprune.compare.execute import run_grid
from devprune.compare.frontier import aggregate, write_frontier
from devprune.compare.grid import grid_from_dict, load_grid
from devprune.errors import ConfigError
from devprune.runner.matching import matched_target
from devprune.runner.metrics import read_metrics
from tests.runner.tiny import TINY


def _tiny_yaml(tmp_path: Path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return str(path)


def _grid(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    raw = {
        "name": "tiny-grid",
        "base": _tiny_yaml(tmp_path),
        "set": ["train.epochs=2", "measure.subset=20"],
        "seeds": [0, 1],
        "cells": [
            {"name": "dense"},
            {"name": "magnitude", "method": "magnitude", "targets": [0.5, 0.2],
             "set": {"prune.magnitude.end": 0, "prune.magnitude.schedule": "oneshot"}},
            {"name": "magnitude-matched", "method": "magnitude", "match": "random",
             "set": {"prune.magnitude.end": 0, "prune.magnitude.schedule": "oneshot"}},
        ],
    }
    raw["cells"].insert(1, {"name": "random", "method": "random", "targets": [0.3],
                            "set": {"prune.random.end": 0}})
    raw["cells"][3]["match"] = "random"
    raw.update(changes)
    return raw


def test_a_grid_expands_to_cells_times_targets_times_seeds(tmp_path: Path) -> None:
    grid = grid_from_dict(_grid(tmp_path))
    assert grid.settings() == ["dense", "random@0.3", "magnitude@0.5", "magnitude@0.2",
                               "magnitude-matched"]
    assert len(grid.cells) == 10
    cell = next(c for c in grid.cells if c.key == "magnitude@0.2" and c.seed == 1)
    assert cell.all_overrides()[-2:] == ["train.seed=1", "prune.magnitude.target=0.2"]


def test_tiny_grid_runs_resumes_and_matches(tmp_path: Path) -> None:
    grid = grid_from_dict(_grid(tmp_path))
    out = tmp_path / "out"
    lines: list[str] = []
    first = run_grid(grid, out, log=lines.append)
    assert len(first) == 10
    # matched: the baseline keeps exactly the random run's per-layer connectivity
    for seed in (0, 1):
        wanted = matched_target(out / "random@0.3" / f"seed-{seed}")
        got = read_metrics(out / "magnitude-matched" / f"seed-{seed}" / "metrics.jsonl")
        layers = got[-1]["layers"]
        assert {k: layers[k]["connectivity"] for k in wanted} == pytest.approx(wanted, abs=1e-9)
    # a second call runs nothing: finished cells are never re-run
    stamp = (out / "dense" / "seed-0" / "summary.json").stat().st_mtime_ns
    assert run_grid(grid, out, log=lines.append) == {}
    assert "10 already done, 0 to run" in lines[-1]
    assert (out / "dense" / "seed-0" / "summary.json").stat().st_mtime_ns == stamp

    rows = {r["setting"]: r for r in aggregate(grid, out)}
    assert rows["magnitude@0.2"]["connectivity"] == pytest.approx(0.2, abs=0.01)
    assert rows["dense"]["connectivity"] == 1.0 and rows["dense"]["seeds"] == [0, 1]
    assert rows["magnitude@0.5"]["final_test_std"] is not None
    write_frontier(grid, out, command="test", log=lambda _: None)
    table = (out / "compare.md").read_text()
    assert "| magnitude@0.2 | magnitude | 2/2 | 2 |" in table
    assert json.loads((out / "compare.json").read_text())["rows"][0]["setting"] == "dense"
    for png in ("accuracy_connectivity.png", "accuracy_energy.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_a_run_killed_before_its_first_checkpoint_restarts_in_place(tmp_path: Path) -> None:
    raw = _grid(tmp_path, seeds=[0], cells=[{"name": "dense"}])
    grid = grid_from_dict(raw)
    out = tmp_path / "out"
    run_grid(grid, out, log=lambda _: None)
    killed = out / "dense" / "seed-0"  # as a kill in epoch 1 leaves it: config, no checkpoint
    for name in ("last.pt", "best.pt", "summary.json"):
        (killed / name).unlink(missing_ok=True)
    (killed / "metrics.jsonl").write_text("")
    run_grid(grid, out, log=lambda _: None)
    assert (killed / "summary.json").is_file() and (killed / "last.pt").is_file()
    assert sorted(p.name for p in (out / "dense").iterdir()) == ["seed-0"]  # nothing set aside


@pytest.mark.parametrize("change, message", [
    ({"cells": [{"name": "x", "method": "magnitude", "targets": [0.0]}]},
     r"targets: 0.0 is not a kept fraction in \(0, 1\]"),
    ({"cells": [{"name": "x", "method": "magnitude", "targets": [1.5]}]}, "kept fraction"),
    ({"cells": [{"name": "x", "method": "magnitud"}]}, "unknown method 'magnitud'"),
    ({"cells": [{"name": "x", "method": "magnitude",
                 "set": {"prune.magnitude.start": 4, "prune.magnitude.end": 1}}]},
     "end: 1 precedes start 4"),
    ({"cells": [{"name": "d"}, {"name": "m", "method": "magnitude", "match": "d"}]},
     "cell 'd' is dense"),
    ({"cells": [{"name": "m", "method": "magnitude", "match": "later"}]},
     "'later' is not an earlier cell"),
    ({"cells": [{"name": "x", "method": "dpap", "targets": [0.1]}]}, "takes no target"),
    ({"cells": [{"name": "x", "colour": 1}]}, r"unknown key\(s\) \['colour'\]"),
    ({"seeds": [0, 0]}, "repeats a seed"),
])
def test_bad_grids_are_refused_before_any_run(tmp_path: Path, change: dict,
                                              message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        grid_from_dict(_grid(tmp_path, **change))


def test_matching_a_dense_or_unfinished_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds no finished run"):
        matched_target(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps({"method": "none"}))
    with pytest.raises(ConfigError, match="is a dense run"):
        matched_target(tmp_path)


def test_cli_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(yaml.safe_dump(_grid(tmp_path, cells=[
        {"name": "x", "method": "magnitude", "targets": [2.0]}])))
    out = tmp_path / "out"
    for argv in (["compare", str(grid_file), "--out", str(out)],
                 ["compare", "--base", _tiny_yaml(tmp_path), "--methods", "dense", "nope",
                  "--out", str(out)],
                 ["compare", str(tmp_path / "missing.yaml"), "--out", str(out)]):
        proc = subprocess.run([sys.executable, "-m", "devprune", *argv], capture_output=True,
                              text=True)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("devprune: error:")
        assert not out.exists()


def test_grid_files_shipped_with_the_experiments_are_valid() -> None:
    root = Path(__file__).resolve().parents[2] / "experiments" / "grids"
    files = sorted(root.glob("*.yaml"))
    assert files
    for path in files:
        grid = load_grid(path)
        assert grid.cells and len(grid.seeds) >= 2


def test_train_match_runs_a_baseline_at_another_runs_connectivity(tmp_path: Path,
                                                                  capsys) -> None:
    from devprune.cli import main

    tiny = _tiny_yaml(tmp_path)
    common = ["--quiet", "--set", "train.epochs=1", "measure.subset=20"]
    assert main(["train", tiny, "--out", str(tmp_path / "dense"), *common]) == 0
    assert main(["train", tiny, "--out", str(tmp_path / "rand"), *common, "prune.method=random",
                 "prune.random.target=0.4", "prune.random.end=0"]) == 0
    assert main(["train", tiny, "--out", str(tmp_path / "mag"), *common,
                 "prune.method=magnitude", "prune.magnitude.end=0",
                 "--match", str(tmp_path / "rand")]) == 0
    layers = read_metrics(tmp_path / "mag" / "metrics.jsonl")[-1]["layers"]
    wanted = matched_target(tmp_path / "rand")
    assert {k: layers[k]["connectivity"] for k in wanted} == pytest.approx(wanted)
    capsys.readouterr()
    assert main(["train", tiny, "--out", str(tmp_path / "x"), *common, "prune.method=magnitude",
                 "--match", str(tmp_path / "dense")]) == 2
    assert "is a dense run" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
