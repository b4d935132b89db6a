"""`devprune data ...`: one-line errors with exit code 2 and no traceback.

The error cases run the real entry point (`python -m devprune`) in subprocesses, started
together because each pays the torch import; the other commands run in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from devprune.cli import main
from tests.data.data_helpers import idx_bytes


@pytest.fixture(scope="module")
def cli_errors(tmp_path_factory) -> dict[str, tuple[int, str, object]]:
    """(exit code, stderr, scenario data) for each error scenario, run in parallel."""
    base = tmp_path_factory.mktemp("cli")
    blocker = base / "a-file"
    blocker.write_text("not a directory")
    truncated_root = base / "truncated"
    (truncated_root / "mnist").mkdir(parents=True)
    image_file = truncated_root / "mnist" / "train-images-idx3-ubyte"
    image_file.write_bytes(idx_bytes(np.zeros((100, 28, 28), dtype=np.uint8))[:5000])
    scenarios = {
        "unknown": (["data", "fetch", "mnist", "fashion-mnsit", "--root", str(base / "u")],
                    {}, base / "u"),
        "unwritable": (["data", "fetch", "mnist", "--root", str(blocker / "data")], {},
                       blocker / "data"),
        "truncated": (["data", "verify", "mnist"], {"DEVPRUNE_DATA": str(truncated_root)},
                      image_file),
    }
    running = {
        name: subprocess.Popen([sys.executable, "-m", "devprune", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **extra_env})
        for name, (args, extra_env, _) in scenarios.items()
    }
    results = {}
    for name, process in running.items():
        _, stderr = process.communicate(timeout=300)
        results[name] = (process.returncode, stderr, scenarios[name][2])
    return results


def assert_one_line_error(code: int, stderr: str, *needles: str) -> None:
    assert code == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("devprune: error: "), stderr
    for needle in needles:
        assert needle in lines[0]


def test_unknown_dataset_name(cli_errors):
    code, stderr, root = cli_errors["unknown"]
    assert_one_line_error(code, stderr, "unknown dataset 'fashion-mnsit'",
                          "did you mean 'fashion-mnist'")
    assert not (root / "mnist").exists()  # every name is checked before any is fetched


def test_unwritable_root(cli_errors):
    code, stderr, root = cli_errors["unwritable"]
    assert_one_line_error(code, stderr, str(root), "--root")


def test_truncated_file_is_reported_by_verify(cli_errors):
    code, stderr, image_file = cli_errors["truncated"]
    assert_one_line_error(code, stderr, str(image_file), "truncated", "devprune data fetch")


def test_list_shows_presence_and_location(tmp_path, capsys):
    (tmp_path / "cifar-10-batches-py").mkdir()
    assert main(["data", "list", "--root", str(tmp_path)]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "missing" in rows["mnist"] and str(tmp_path / "mnist") in rows["mnist"]
    assert "present" in rows["cifar10"] and str(tmp_path / "cifar-10-batches-py") in rows["cifar10"]
    assert "generated" in rows["synthetic"]


def test_verify_of_an_in_memory_dataset_loads_it(capsys):
    assert main(["data", "verify", "synthetic"]) == 0
    assert "synthetic train: 2000 samples OK" in capsys.readouterr().out


def test_fetch_of_a_non_fetchable_dataset_is_a_one_line_error(tmp_path, capsys):
    assert main(["data", "fetch", "cifar100", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot be fetched" in err and "cifar-100-python" in err
