"""A corpus of bad configuration input tried from the CLI as a new user would: each is exit
code 2, one line naming the key or file, no traceback, nothing written, within seconds."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from devprune.cli import main
from devprune.pruning.base import pruner_config_class

BAD_SETS = [
    ("train.lr=.nan", "train.lr"), ("train.lr=-.inf", "train.lr"), ("train.lr=1e39", "train.lr"),
    ("train.lr=0", "train.lr"), ("train.weight_decay=.nan", "train.weight_decay"),
    ("train.weight_decay=-1", "train.weight_decay"), ("train.gamma=.inf", "train.gamma"),
    ("train.gamma=0", "train.gamma"), ("train.momentum=.nan", "train.momentum"),
    ("train.warmup_lr=.inf", "train.warmup_lr"), ("train.min_lr=.nan", "train.min_lr"),
    ("train.milestones=[-5]", "train.milestones"), ("train.milestones=[5, 2]", "train.milestones"),
    ("train.milestones=[1, 1]", "train.milestones"),
    ("train.milestones=[1, .nan]", "train.milestones[1]"),
    ("train.seed=-1", "train.seed"), (f"train.seed={2**63}", "train.seed"),
    (f"data.seed={10**30}", "data.seed"), ("train.threads=-1", "train.threads"),
    ("train.threads=5000", "train.threads"), ("model.time_steps=0", "model.time_steps"),
    ("model.time_steps=100000", "model.time_steps"), ("train.epochs=0", "train.epochs"),
    (f"train.epochs={10**30}", "train.epochs"), ("measure.energy_mac_pj=.nan",
                                                  "measure.energy_mac_pj"),
    ("measure.energy_ac_pj=.inf", "measure.energy_ac_pj"), ("measure.subset=0", "measure.subset"),
    ("data.val_fraction=.nan", "data.val_fraction"), ("data.val_fraction=1", "data.val_fraction"),
    ("data.batch_size=0", "data.batch_size"), ("run.name=..", "run.name"),
    ("run.name=../x", "run.name"), ("run.name=/abs", "run.name"), ("run.name=.hidden", "run.name"),
    ("run.checkpoint_every=0", "run.checkpoint_every"),
    ("model.kwargs={neuron_kwargs: {tau: .nan}}", "model.kwargs.neuron_kwargs.tau"),
    ("data.options={noise: .inf}", "data.options.noise"),
]


def _method_float_cases() -> list[tuple[list[str], str]]:
    cases = []
    for method in ("dpap", "sdsnn"):
        for f in dataclasses.fields(pruner_config_class(method)):
            if f.type in (float, "float"):
                for bad in (".nan", ".inf"):
                    cases.append(([f"prune.method={method}", f"prune.{method}.{f.name}={bad}"],
                                  f"prune.{method}.{f.name}"))
    return cases


CASES = [([text], key) for text, key in BAD_SETS] + _method_float_cases()


def _refused(capsys: pytest.CaptureFixture, args: list[str], named: str, out: Path) -> None:
    start = time.perf_counter()
    assert main([*args, "--out", str(out), "--quiet"]) == 2
    assert time.perf_counter() - start < 10.0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("devprune: error: ") and named in err, (named, err)
    assert not out.exists()


@pytest.mark.parametrize(("sets", "key"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_values_from_set(tmp_path: Path, tiny_yaml: Path, capsys: pytest.CaptureFixture,
                             sets: list[str], key: str) -> None:
    _refused(capsys, ["train", str(tiny_yaml), "--set", *sets], key, tmp_path / "run")


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8))

BAD_FILES = {
    "bomb.yaml": BOMB,
    "recursive.yaml": "train: &t {lr: 0.1, again: *t}\n",
    "deep.yaml": "train: " + "[" * 300 + "]" * 300 + "\n",
    "list.yaml": "- train\n- data\n",
    "scalar.yaml": "just words\n",
    "tabs.yaml": "train:\n\tlr: 0.1\n",
    "unclosed.yaml": "train: {lr: 0.1\n",
    "huge.yaml": "description: " + "x" * 1_200_000 + "\n",
    "section.yaml": "train: 3\n",
    "unknown.yaml": "trainn: {lr: 0.1}\n",
    "nan.yaml": "train: {lr: .NaN}\n",
    "merge.yaml": "base_train: &b {lr: .inf}\ntrain: {<<: *b}\n",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_config_files(tmp_path: Path, capsys: pytest.CaptureFixture, name: str) -> None:
    path = tmp_path / name
    path.write_text(BAD_FILES[name])
    named = "train.lr" if name in ("nan.yaml",) else name
    if name == "merge.yaml":
        named = "base_train"  # the unknown top-level key is found first
    if name in ("section.yaml", "unknown.yaml"):
        named = "train"
    _refused(capsys, ["train", str(path)], named, tmp_path / "run")


def test_binary_config_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(bytes(range(256)))
    _refused(capsys, ["train", str(path)], "binary.yaml", tmp_path / "run")
