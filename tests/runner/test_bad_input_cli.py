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


# ==========================================================================================
# The other categories: --set overrides, CLI usage, checkpoints, run directories, output
# paths, dataset files, event files (and more config values and YAML structure). Each case
# is (category, id, make): ``make(case_dir, runs)`` prepares files under ``case_dir`` and
# returns (argv, fragment the one-line message must contain). Every case: exit code 2, one
# line, no traceback, no pre-existing file changed, within TIME_LIMIT seconds.
# ==========================================================================================
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pickle  # noqa: E402
import shutil  # noqa: E402
import struct  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from devprune.runner.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from tests.runner.tiny import TINY  # noqa: E402

TIME_LIMIT = 10.0
Make = Callable[[Path, dict[str, Path]], tuple[list[str], str]]
CORPUS: list[tuple[str, str, Make]] = []


def case(category: str, name: str, make: Make) -> None:
    CORPUS.append((category, name, make))


def _tiny_file(folder: Path, **changes: Any) -> Path:
    raw = yaml.safe_load(yaml.safe_dump(TINY))
    for dotted, value in changes.items():
        node = raw
        *parents, last = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _copy_run(runs: dict[str, Path], folder: Path, which: str = "good") -> Path:
    target = folder / "run"
    shutil.copytree(runs[which], target)
    return target


# ---- config values: the baselines' floats and targets, wrong types ------------------------
def _baseline_cases() -> None:
    from devprune.pruning.base import pruner_config_class

    for method in ("magnitude", "random", "lth", "set", "rigl"):
        floats = [f.name for f in dataclasses.fields(pruner_config_class(method))
                  if f.type in (float, "float")]
        values = [f"prune.{method}.{name}={bad}" for name in floats for bad in (".nan", ".inf")]
        values += [f"prune.{method}.target={bad}" for bad in (".nan", "-0.5", "1.5")]
        values.append(f"prune.{method}.target={{features.layer1.fc: .nan}}")
        for text in values:
            key = text.split("=")[0]

            def make(d: Path, runs: dict[str, Path], text: str = text, method: str = method,
                     key: str = key) -> tuple[list[str], str]:
                return (["train", str(_tiny_file(d)), "--set", f"prune.method={method}", text,
                         "--out", str(d / "out")], key.rsplit(".", 1)[0])
            case("config values", text, make)


_baseline_cases()

WRONG_TYPES = {
    "train.lr": "abc", "train.epochs": "1.5", "train.warmup_lr": "[3]", "train.seed": "{a: 1}",
    "train.optimizer": "adamm", "train.loss": "nosuch", "train.schedule": "sometimes",
    "train.deterministic": "maybe", "train.device": "tpu", "data.batch_size": "-3",
    "data.name": "nosuchdata", "model.name": "nosuchmodel", "model.kwargs": "[1, 2]",
    "prune.mode": "soft", "prune.method": "nosuch", "prune.dpap.every_batches": "-1",
    "measure.every": "-2", "run.keep": "-1", "run.allow_empty_layers": "perhaps",
    "data.options": "3", "train.milestones": "five", "train.warmup_epochs": "-1",
}
for _key, _value in WRONG_TYPES.items():
    def _make(d: Path, runs: dict[str, Path], key: str = _key, value: str = _value
              ) -> tuple[list[str], str]:
        return (["train", str(_tiny_file(d)), "--set", f"{key}={value}", "--out",
                 str(d / "out")], key.split(".")[0])
    case("config values", f"{_key}={_value}", _make)


# ---- YAML structure: every section the wrong kind of node, unknown keys -------------------
SECTIONS = ("data", "model", "train", "prune", "measure", "run")
for _section in SECTIONS:
    for _label, _node in (("scalar", "3"), ("list", "[1, 2]"), ("string", "hello"),
                          ("unknown key", "{nosuch_key: 1}")):
        def _make(d: Path, runs: dict[str, Path], section: str = _section, node: str = _node
                  ) -> tuple[list[str], str]:
            path = d / "bad.yaml"
            path.write_text(f"{section}: {node}\n")
            return ["train", str(path), "--out", str(d / "out")], section
        case("YAML structure", f"{_section} {_label}", _make)

YAML_TEXTS = {
    "python object tag": "train: !!python/object/apply:os.system ['true']\n",
    "duplicate anchor alias chain": "a: &x [1]\nb: *y\n",
    "bad indentation": "train:\n  lr: 0.1\n   epochs: 3\n",
    "document stream": "train: {lr: 0.1}\n---\ntrain: {lr: 0.2}\n",
    "null byte": "train: {lr: 0.1}\x00\n",
}
for _label, _text in YAML_TEXTS.items():
    def _make(d: Path, runs: dict[str, Path], text: str = _text) -> tuple[list[str], str]:
        path = d / "bad.yaml"
        path.write_text(text)
        return ["train", str(path), "--out", str(d / "out")], "bad.yaml"
    case("YAML structure", _label, _make)


# ---- --set overrides ------------------------------------------------------------------------
BAD_OVERRIDES = {
    "train.lr": "train.lr", "=3": "=3", "train..lr=1": "train..lr", ".lr=1": ".lr",
    "train.lr=[": "train.lr", "train.lr={": "train.lr", "train.lr=]": "train.lr",
    "nosuch.key=1": "nosuch", "train.nosuch=1": "train.nosuch",
    "prune.dpap.nosuch=1": "prune.dpap.nosuch", "prune.nosuch=1": "prune.nosuch",
    "model.kwargs.hidden=[-1]": "hidden", "train.lr.sub=1": "train.lr",
    "data.batch_size=1e400": "data.batch_size", "train.lr='0.1'": "train.lr",
    "train.epochs=true": "train.epochs", "train.seed=1.5": "train.seed",
    "train.lr=!!python/object/apply:os.system [true]": "train.lr",
    "train.lr=&a [*a]": "train.lr", "train=3": "train", "prune=[1]": "prune",
    "run.name=": "run.name", "run.name=a/b": "run.name", "run.name=..\\x": "run.name",
    "data.options.num_train=-5": "num_samples", "train.threads=1.5": "train.threads",
    "model.time_steps=[2]": "model.time_steps", "description=[1]": "description",
    "base=nosuch-preset": "base", "train.lr=%": "train.lr",
    "train.gamma=1e309": "train.gamma", "measure.subset=2.5": "measure.subset",
    "train.warmup_epochs=1.5": "train.warmup_epochs",
    "data.val_fraction=-0.1": "data.val_fraction",
    "prune.sdsnn.every_batches=-4": "prune.sdsnn",
}
for _text, _named in BAD_OVERRIDES.items():
    def _make(d: Path, runs: dict[str, Path], text: str = _text, named: str = _named
              ) -> tuple[list[str], str]:
        return ["train", str(_tiny_file(d)), "--set", text, "--out", str(d / "out")], named
    case("--set overrides", _text, _make)


# ---- CLI usage (argparse, one line too) -------------------------------------------------------
USAGE = {
    "no such command": (["trian"], "trian"), "train bad flag": (["train", "--bogus"], "--bogus"),
    "eval without run": (["eval"], "RUN"), "report without run": (["report"], "RUN"),
    "measure without run": (["measure"], "RUN"), "compact without out": (["compact", "x"], "--out"),
    "compact without run": (["compact"], "run"),
    "eval bad checkpoint": (["eval", "x", "--checkpoint", "worst"], "worst"),
    "compact bad checkpoint": (["compact", "x", "--out", "y", "--checkpoint", "mid"], "mid"),
    "set without value": (["train", "x.yaml", "--set"], "--set"),
    "out without value": (["train", "x.yaml", "--out"], "--out"),
    "data without action": (["data", "frobnicate"], "frobnicate"),
    "data fetch no name": (["data", "fetch"], "NAME"), "data verify no name": (["data", "verify"],
                                                                             "NAME"),
    "export without out": (["export", "x", "--format", "nir"], "--out"),
    "export bad format": (["export", "x", "--format", "onnx", "--out", "y"], "onnx"),
    "compare without grid": (["compare"], "GRID"), "presets extra": (["presets", "x"], "x"),
    "train two configs": (["train", "a.yaml", "b.yaml"], "b.yaml"),
    "eval two runs": (["eval", "a", "b"], "b"), "measure bad flag": (["measure", "x", "--fast"],
                                                                     "--fast"),
    "train resume without out": (["train", "--resume"], "--out"),
    "train without config": (["train"], "CONFIG"),
    "train match without run": (["train", "x.yaml", "--match"], "--match"),
    "report out without value": (["report", "x", "--out"], "--out"),
}
for _label, (_argv, _named) in USAGE.items():
    def _make(d: Path, runs: dict[str, Path], argv: list[str] = _argv, named: str = _named
              ) -> tuple[list[str], str]:
        return list(argv), named
    case("CLI usage", _label, _make)


# ---- checkpoints: damaged, foreign or inconsistent last.pt, through every command reading it --
def _resave(path: Path, change: Callable[[dict[str, Any]], None], raw: bool = False) -> None:
    """Change a checkpoint's content and write it back with a valid checksum (``raw``: also
    the format entries, written as they are)."""
    from devprune.utils.checksum import payload_digest

    payload = load_checkpoint(path)
    change(payload)
    if raw:
        payload["checksum"] = payload_digest({k: v for k, v in payload.items()
                                              if k != "checksum"})
        torch.save(payload, path)
        return
    save_checkpoint(path, {k: v for k, v in payload.items()
                           if k not in ("format", "format_version", "checksum")})


# Where a hostile pickle of the corpus would leave a file if devprune ran its code.
PWNED = Path(tempfile.gettempdir()) / f"devprune-fuzz-pwned-{os.getpid()}"


class _Hostile:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {PWNED}",))


def _other_model(payload: dict[str, Any], runs: dict[str, Path]) -> None:
    payload["model"] = load_checkpoint(runs["other"] / "last.pt")["model"]


CHECKPOINT_DAMAGE: dict[str, Callable[[Path, dict[str, Path]], None]] = {
    "empty": lambda p, r: p.write_bytes(b""),
    "truncated half": lambda p, r: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "truncated 100 bytes": lambda p, r: p.write_bytes(p.read_bytes()[:100]),
    "random bytes": lambda p, r: p.write_bytes(np.random.default_rng(5).bytes(4000)),
    "text": lambda p, r: p.write_text("this is not a checkpoint\n"),
    "json": lambda p, r: p.write_text(json.dumps({"model": {}})),
    "plain state_dict": lambda p, r: torch.save(torch.nn.Linear(2, 2).state_dict(), p),
    "a tensor": lambda p, r: torch.save(torch.zeros(3), p),
    "pickled code": lambda p, r: torch.save({"format": "devprune-run-checkpoint",
                                             "x": _Hostile()}, p),
    "weights of another model": lambda p, r: _resave(p, lambda d: _other_model(d, r)),
    "no model entry": lambda p, r: _resave(p, lambda d: d.pop("model")),
    "no config entry": lambda p, r: _resave(p, lambda d: d.pop("config")),
    "config not a dict": lambda p, r: _resave(p, lambda d: d.update(config=[1, 2])),
    "invalid config": lambda p, r: _resave(p, lambda d: d["config"]["train"].update(lr=-1.0)),
    "masks of another shape": lambda p, r: _resave(p, _wrong_masks),
    "format version 99": lambda p, r: _resave(p, lambda d: d.update(format_version=99), raw=True),
    "a flipped byte": lambda p, r: _flip_byte(p),
    "a directory": lambda p, r: (p.unlink(), p.mkdir()),
    "epochs_done text": lambda p, r: _resave(p, lambda d: d.update(epochs_done="three")),
    "model entry a list": lambda p, r: _resave(p, lambda d: d.update(model=[1, 2])),
}


def _wrong_masks(payload: dict[str, Any]) -> None:
    state = payload["pruner"]["masks"]
    state["masks"] = {k: torch.ones(3, 3, dtype=torch.bool) for k in state["masks"]}


def _flip_byte(path: Path) -> None:
    """Flip one byte inside the largest tensor's data (the zip stays readable)."""
    from tests.runner.test_checkpoint_checksum import _flip_tensor_byte

    _flip_tensor_byte(path)


CHECKPOINT_COMMANDS = {
    "eval": lambda run, d: ["eval", str(run), "--checkpoint", "last"],
    "compact": lambda run, d: ["compact", str(run), "--checkpoint", "last", "--out",
                               str(d / "small.pt")],
    "resume": lambda run, d: ["train", "--resume", "--out", str(run), "--quiet"],
}
# A self-consistent checkpoint of another configuration is not an error for compact (it reads
# the checkpoint's own config); eval ignores the masks; only resume reads epochs_done's type.
# eval and resume read config.yaml, not the checkpoint's copy of the config.
NOT_AN_ERROR = {("eval", "masks of another shape"), ("eval", "no config entry"),
                ("eval", "invalid config"), ("resume", "invalid config")}

for _damage in CHECKPOINT_DAMAGE:
    for _command in CHECKPOINT_COMMANDS:
        if (_command, _damage) in NOT_AN_ERROR:
            continue

        def _make(d: Path, runs: dict[str, Path], damage: str = _damage,
                  command: str = _command) -> tuple[list[str], str]:
            run = _copy_run(runs, d)
            CHECKPOINT_DAMAGE[damage](run / "last.pt", runs)
            return CHECKPOINT_COMMANDS[command](run, d), "last.pt"
        case("checkpoints", f"{_damage} / {_command}", _make)


# ---- run directories: missing, truncated, foreign files, through every command --------------
def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _other_summary(run: Path, runs: dict[str, Path]) -> None:
    shutil.copy(runs["other"] / "summary.json", run / "summary.json")


RUN_DAMAGE: dict[str, tuple[Callable[[Path, dict[str, Path]], None], str, tuple[str, ...]]] = {
    # name: (damage, file the message names, commands it applies to)
    "missing folder": (lambda r, x: shutil.rmtree(r), "run",
                       ("eval", "report", "measure", "compact", "resume")),
    "a file, not a folder": (lambda r, x: (shutil.rmtree(r), r.write_text("x")), "run",
                             ("eval", "report", "measure", "compact", "resume")),
    "empty folder": (lambda r, x: (shutil.rmtree(r), r.mkdir()), "run",
                     ("eval", "report", "measure", "compact", "resume")),
    "no config.yaml": (lambda r, x: (r / "config.yaml").unlink(), "config.yaml",
                       ("eval", "resume")),
    "config.yaml not YAML": (lambda r, x: (r / "config.yaml").write_text("train: {lr: 0.1\n"),
                             "config.yaml", ("eval", "resume")),
    "config.yaml of another run": (lambda r, x: shutil.copy(x["other"] / "config.yaml",
                                                            r / "config.yaml"),
                                   "checkpoint", ("eval", "resume")),
    "config.yaml a list": (lambda r, x: (r / "config.yaml").write_text("- 1\n- 2\n"),
                           "config.yaml", ("eval", "resume")),
    "no checkpoints": (lambda r, x: [(r / n).unlink() for n in ("last.pt", "best.pt")],
                       "run", ("eval", "compact")),
    "metrics.jsonl cut mid-line": (lambda r, x: _truncate(r / "metrics.jsonl", 0.7),
                                   "metrics.jsonl", ("report", "measure", "resume")),
    "metrics.jsonl binary": (lambda r, x: (r / "metrics.jsonl").write_bytes(bytes(range(256))),
                             "metrics.jsonl", ("report", "measure", "resume")),
    "metrics.jsonl list lines": (lambda r, x: (r / "metrics.jsonl").write_text("[1]\n[2]\n"),
                                 "metrics.jsonl", ("report", "measure", "resume")),
    "metrics.jsonl records without fields": (
        lambda r, x: (r / "metrics.jsonl").write_text('{"epoch": 0}\n{"epoch": 1}\n'),
        "metrics.jsonl", ("report", "resume")),
    "metrics.jsonl missing, no summary": (
        lambda r, x: [(r / n).unlink() for n in ("metrics.jsonl", "summary.json")],
        "run", ("report", "measure")),
    "summary.json cut": (lambda r, x: _truncate(r / "summary.json"), "summary.json",
                         ("report", "measure")),
    "summary.json a list": (lambda r, x: (r / "summary.json").write_text("[1, 2]"),
                            "summary.json", ("report", "measure")),
    "summary.json of another run": (_other_summary, "summary.json", ("report", "measure")),
    "summary.json without fields": (lambda r, x: (r / "summary.json").write_text('{"run": 1}'),
                                    "summary.json", ("report", "measure")),
    "summary.json binary": (lambda r, x: (r / "summary.json").write_bytes(b"\xff\xfe\x00"),
                            "summary.json", ("report", "measure")),
    "last.pt lost, best.pt kept": (lambda r, x: (r / "last.pt").unlink(), "last.pt",
                                   ("resume",)),
}
RUN_COMMANDS = {
    "eval": lambda run, d: ["eval", str(run)],
    "report": lambda run, d: ["report", str(run)],
    "measure": lambda run, d: ["measure", str(run)],
    "compact": lambda run, d: ["compact", str(run), "--out", str(d / "small.pt")],
    "resume": lambda run, d: ["train", "--resume", "--out", str(run), "--quiet"],
}
for _damage, (_apply, _named, _commands) in RUN_DAMAGE.items():
    for _command in _commands:
        def _make(d: Path, runs: dict[str, Path], apply: Any = _apply, named: str = _named,
                  command: str = _command) -> tuple[list[str], str]:
            run = _copy_run(runs, d)
            apply(run, runs)
            return RUN_COMMANDS[command](run, d), named
        case("run directories", f"{_damage} / {_command}", _make)


# ---- output paths ------------------------------------------------------------------------------
def _out_cases() -> None:
    def train_out(prepare: Callable[..., Path], named: str, *extra: str) -> Make:
        def make(d: Path, runs: dict[str, Path]) -> tuple[list[str], str]:
            out = prepare(d, runs)
            return ["train", str(_tiny_file(d)), "--out", str(out), "--quiet", *extra], named
        return make

    def a_file(d: Path, runs: Any = None) -> Path:
        (d / "out").write_text("mine")
        return d / "out"

    def foreign(d: Path, runs: Any = None) -> Path:
        (d / "out").mkdir()
        (d / "out" / "thesis.tex").write_text("mine")
        return d / "out"

    def clash(d: Path, runs: Any = None) -> Path:
        foreign(d)
        (d / "out" / "report.md").write_text("mine")
        return d / "out"

    def under_a_file(d: Path, runs: Any = None) -> Path:
        (d / "blocker").write_text("mine")
        return d / "blocker" / "out"

    case("output paths", "train --out a file", train_out(a_file, "out"))
    case("output paths", "train --out a foreign folder", train_out(foreign, "out"))
    case("output paths", "train --force beside report.md", train_out(clash, "report.md",
                                                                     "--force"))
    case("output paths", "train --out under a file", train_out(under_a_file, "blocker"))

    def run_copy(d: Path, runs: dict[str, Path]) -> Path:
        return _copy_run(runs, d)

    case("output paths", "train --out a finished run", train_out(run_copy, "--resume"))

    def other_unfinished(d: Path, runs: dict[str, Path]) -> Path:
        run = _copy_run(runs, d, "other")
        for name in ("last.pt", "best.pt", "summary.json"):
            (run / name).unlink()
        metrics = run / "metrics.jsonl"  # killed after epoch 1, before its checkpoint
        metrics.write_text(metrics.read_text().splitlines()[0] + "\n")
        return run

    case("output paths", "train --out another config's unfinished run",
         train_out(other_unfinished, "another configuration"))

    for own in ("last.pt", "best.pt", "config.yaml", "metrics.jsonl", "summary.json",
                "epoch-001.pt", "report.md", "eval-best.json"):
        def make(d: Path, runs: dict[str, Path], own: str = own) -> tuple[list[str], str]:
            run = _copy_run(runs, d)
            return ["compact", str(run), "--out", str(run / own), "--force"], own
        case("output paths", f"compact --out the run's {own}", make)

    def compact_existing(d: Path, runs: dict[str, Path]) -> tuple[list[str], str]:
        run = _copy_run(runs, d)
        (d / "small.pt").write_text("mine")
        return ["compact", str(run), "--out", str(d / "small.pt")], "small.pt"

    def compact_folder(d: Path, runs: dict[str, Path]) -> tuple[list[str], str]:
        run = _copy_run(runs, d)
        (d / "models").mkdir()
        return ["compact", str(run), "--out", str(d / "models")], "models"

    def compact_under_file(d: Path, runs: dict[str, Path]) -> tuple[list[str], str]:
        run = _copy_run(runs, d)
        (d / "blocker").write_text("mine")
        return ["compact", str(run), "--out", str(d / "blocker" / "small.pt")], "blocker"

    def report_out_file(d: Path, runs: dict[str, Path]) -> tuple[list[str], str]:
        run, other = _copy_run(runs, d), d / "other"
        shutil.copytree(runs["other"], other)
        (d / "cmp").write_text("mine")
        return ["report", str(run), str(other), "--out", str(d / "cmp")], "cmp"

    case("output paths", "compact --out an existing file", compact_existing)
    case("output paths", "compact --out a folder", compact_folder)
    case("output paths", "compact --out under a file", compact_under_file)
    case("output paths", "report --out a file", report_out_file)


_out_cases()


# ---- dataset files: MNIST IDX files and CIFAR pickles in a data root -------------------------
def _mnist_root(d: Path) -> Path:
    from tests.data.data_helpers import idx_bytes, tiny_mnist_arrays, write_files

    write_files(d / "data" / "mnist", {stem: idx_bytes(a)
                                       for stem, a in tiny_mnist_arrays().items()})
    return d / "data"


IDX_DAMAGE: dict[str, Callable[[Path], None]] = {
    "missing": lambda p: p.unlink(),
    "empty": lambda p: p.write_bytes(b""),
    "cut header": lambda p: p.write_bytes(p.read_bytes()[:3]),
    "cut data": lambda p: _truncate(p, 0.6),
    "wrong magic": lambda p: p.write_bytes(b"\x12\x34" + p.read_bytes()[2:]),
    "absurd count": lambda p: p.write_bytes(p.read_bytes()[:4] + struct.pack(">I", 2**31)
                                            + p.read_bytes()[8:]),
}
MNIST_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
for _stem in MNIST_STEMS:
    for _damage in IDX_DAMAGE:
        for _command in ("verify", "train"):
            def _make(d: Path, runs: dict[str, Path], stem: str = _stem, damage: str = _damage,
                      command: str = _command) -> tuple[list[str], str]:
                root = _mnist_root(d)
                IDX_DAMAGE[damage](root / "mnist" / stem)
                if command == "verify":
                    return ["data", "verify", "mnist", "--root", str(root)], stem
                return (["train", "mnist-mlp-dense-quick", "--set", f"data.root={root}",
                         "--out", str(d / "out"), "--quiet"], stem)
            if _command == "train" and _damage not in ("missing", "cut data", "wrong magic"):
                continue
            case("dataset files", f"mnist {_stem} {_damage} / {_command}", _make)


def _cifar_root(d: Path, damage: Callable[[Path], None], member: str) -> Path:
    from tests.data.data_helpers import write_cifar_pickle

    folder = d / "data" / "cifar10" / "cifar-10-batches-py"
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        write_cifar_pickle(folder / name, {b"data": rng.integers(0, 256, (10, 3072),
                                                                 dtype=np.uint8),
                                           b"labels": list(range(10))})
    damage(folder / member)
    return d / "data"


CIFAR_DAMAGE: dict[str, Callable[[Path], None]] = {
    "missing": lambda p: p.unlink(),
    "garbage": lambda p: p.write_bytes(b"\x80\x04garbage"),
    "pickled code": lambda p: p.write_bytes(pickle.dumps(_Hostile())),
    "a list": lambda p: p.write_bytes(pickle.dumps([1, 2, 3])),
    "no labels": lambda p: p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072),
                                                                         np.uint8)})),
    "wrong row size": lambda p: p.write_bytes(pickle.dumps({b"data": np.zeros((2, 100),
                                                                              np.uint8),
                                                            b"labels": [0, 1]})),
}
for _member in ("data_batch_2", "test_batch"):
    for _damage in CIFAR_DAMAGE:
        def _make(d: Path, runs: dict[str, Path], member: str = _member,
                  damage: str = _damage) -> tuple[list[str], str]:
            root = _cifar_root(d, CIFAR_DAMAGE[damage], member)
            return (["train", "mnist-mlp-dense-quick", "--set", "data.name=cifar10",
                     f"data.root={root}", "--out", str(d / "out"), "--quiet"], member)
        case("dataset files", f"cifar10 {_member} {_damage}", _make)


# ---- event files: N-MNIST recordings in a data root ------------------------------------------
def _nmnist_root(d: Path, bad: bytes, split: str) -> Path:
    from tests.data_events.writers import write_nmnist

    root = d / "data"
    for part in ("Train", "Test"):
        for label in range(10):
            write_nmnist(root / "nmnist" / part / str(label) / "00001.bin",
                         [1, 2, 3], [1, 2, 3], [0, 1, 1], [10, 20, 30])
    (root / "nmnist" / split / "3" / "00001.bin").write_bytes(bad)
    return root


def _event_cases() -> None:
    from tests.data_events.writers import nmnist_bytes

    bad_files: dict[str, bytes] = {}
    for index in range(3):
        x, y, t = [1, 2, 3], [1, 2, 3], [10, 20, 30]
        for field, value in (("x", 34), ("x", 255), ("y", 40), ("y", 200)):
            xs, ys = list(x), list(y)
            (xs if field == "x" else ys)[index] = value
            bad_files[f"event {index} {field}={value}"] = nmnist_bytes(xs, ys, [0, 1, 1], t)
    for jump in (8_000_000, 2_000_000):  # far more than the tolerated jitter back in time
        bad_files[f"timestamps jump back {jump}"] = nmnist_bytes([1, 2, 3], [1, 2, 3],
                                                                 [0, 1, 1], [jump, 10, 20])
    for extra in (1, 2, 3, 4):
        bad_files[f"{extra} stray bytes"] = nmnist_bytes([1], [1], [0], [5]) + b"\x01" * extra
    for label, raw in bad_files.items():
        for split in ("Train", "Test"):
            if split == "Test" and not label.startswith(("event 0", "1 stray", "timestamps")):
                continue

            def make(d: Path, runs: dict[str, Path], raw: bytes = raw, split: str = split
                     ) -> tuple[list[str], str]:
                root = _nmnist_root(d, raw, split)
                return (["train", "mnist-mlp-dense-quick", "--set", "data.name=nmnist",
                         f"data.root={root}", "data.val_fraction=0", "model.name=snn-mlp",
                         "data.options={cache: false}", "--out", str(d / "out"), "--quiet"],
                        "00001.bin")
            case("event files", f"nmnist {split} {label}", make)


_event_cases()


# ---- the corpus runner ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished tiny DPAP run, and one of another model (hidden [12]), made once."""
    base = tmp_path_factory.mktemp("fuzz-runs")
    made = {}
    for name, hidden in (("good", 24), ("other", 12)):
        (base / name).mkdir()
        path = _tiny_file(base / name, model__kwargs={"hidden": [hidden]}, run__keep=1)
        assert main(["train", str(path), "--quiet", "--out", str(base / name / "run"), "--set",
                     "train.epochs=2", "train.threads=1", "prune.method=dpap",
                     "prune.dpap.every_batches=2", "prune.dpap.start=0"]) == 0
        made[name] = base / name / "run"
    return made


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def tiny_mnist_checksums(monkeypatch: pytest.MonkeyPatch) -> None:
    from devprune.data import sources
    from tests.data.data_helpers import idx_bytes, tiny_mnist_arrays

    monkeypatch.setitem(sources.CHECKSUMS, "mnist", {
        stem: hashlib.sha256(idx_bytes(a)).hexdigest() for stem, a in tiny_mnist_arrays().items()})


@pytest.mark.parametrize(("category", "make"), [(c[0], c[2]) for c in CORPUS],
                         ids=[f"{c[0]}: {c[1]}" for c in CORPUS])
def test_bad_input_corpus(tmp_path: Path, runs: dict[str, Path], capsys: pytest.CaptureFixture,
                          tiny_mnist_checksums: None, category: str, make: Make) -> None:
    argv, named = make(tmp_path, runs)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    start = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse
        code = stop.code
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "error: " in err and named in err, (named, err)
    if category != "CLI usage":
        assert err.startswith("devprune: error: "), err
    assert elapsed < TIME_LIMIT, elapsed
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing changed
    assert not (tmp_path / "out").exists() or category == "output paths"
    assert not PWNED.exists()


def corpus_counts() -> dict[str, int]:
    """Bad inputs per category: the cases above plus the earlier config-value and YAML ones."""
    counts: dict[str, int] = {}
    for category, _name, _make in CORPUS:
        counts[category] = counts.get(category, 0) + 1
    counts["config values"] = counts.get("config values", 0) + len(CASES)
    counts["YAML structure"] = counts.get("YAML structure", 0) + len(BAD_FILES) + 1
    return counts


def test_the_corpus_covers_nine_categories_with_300_inputs() -> None:
    counts = corpus_counts()
    assert len(counts) == 9 and all(n >= 10 for n in counts.values()), counts
    assert sum(counts.values()) >= 300, counts
