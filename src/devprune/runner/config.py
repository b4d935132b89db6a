"""The experiment configuration: a typed schema, YAML loading, ``--set`` overrides, validation.

Why dataclasses and not pydantic: the schema needs nested sections, defaults, typed fields and
helpful errors, all of which stdlib ``dataclasses`` + ``typing`` give without adding a
dependency (and its version constraints) to a library that otherwise needs only torch, numpy,
PyYAML, tqdm and matplotlib. The pruning methods also describe their settings as plain
dataclasses (``pruner_config_class``), so one small validator here checks both the runner's
sections and every method's section with the same rules and messages.

A configuration file (or preset) is YAML with these top-level keys, each optional::

    description: one line shown by `devprune presets`
    base: another preset name or YAML path whose values this file overrides
    data:    {name, root, val_fraction, batch_size, eval_batch_size, limit_train, ...}
    model:   {name, time_steps, kwargs}
    train:   {epochs, optimizer, lr, weight_decay, schedule, loss, seed, device, ...}
    prune:   {method, mode, <method>: {that method's settings}}
    measure: {every, subset, energy_mac_pj, energy_ac_pj}
    run:     {name, out, checkpoint_every, keep}

Every field is documented on its dataclass below; docs/CONFIG.md gives the same as tables.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union

import yaml

from devprune.errors import ConfigError
from devprune.pruning.base import available_pruners, pruner_config_class
from devprune.runner.presets import resolve_source
from devprune.runner.yamlio import apply_overrides
from devprune.utils.registry import did_you_mean

# Limits of integers that size memory or are handed to C code (each message states its limit).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_SEED = 2**63 - 1
MAX_THREADS = 1024
MAX_TIME_STEPS = 4096
MAX_FLOAT = 3.4028234663852886e38  # float32's largest: settings meet float32 tensors
# YAML (config files and --set values): refused when larger, before anything is built.

# ------------------------------------------------------------------------------------------
# Schema
# ------------------------------------------------------------------------------------------


@dataclass
class DataConfig:
    """``data``: which dataset, how it is split, batched and augmented.

    Attributes:
        name: dataset name as known to ``devprune.data`` (e.g. ``mnist``, ``fashion-mnist``,
            ``cifar10``, ``synthetic``); ``devprune data list`` shows them.
        root: folder holding the dataset files; None = ``devprune.data.default_root()``.
        val_fraction: share of the training set held out as the validation split that
            selects the best epoch (0 = no validation split, no ``best.pt``).
        batch_size: training batch size.
        eval_batch_size: batch size of validation/test passes (no effect on results,
            except which eval spikes a Bernoulli encoder draws: docs/CONFIG.md).
        limit_train: use only the first N training samples (None = all); for quick runs.
        limit_eval: use only the first N validation and N test samples (None = all).
        augment: apply the dataset's standard training augmentation.
        seed: seed of the train/validation split and of the batch shuffling.
        options: further keyword arguments of the dataset's factory (e.g.
            ``{normalize: false}``, or ``{num_train: 500}`` for ``synthetic``).
    """

    name: str = "mnist"
    root: str | None = None
    val_fraction: float = 0.1
    batch_size: int = 100
    eval_batch_size: int = 1000
    limit_train: int | None = None
    limit_eval: int | None = None
    augment: bool = False
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(0.0 <= self.val_fraction < 1.0, "data.val_fraction", "must be in [0, 1)")
        _require(self.batch_size > 0, "data.batch_size", "must be a positive integer")
        _require(self.eval_batch_size > 0, "data.eval_batch_size", "must be positive")
        for key in ("limit_train", "limit_eval"):
            value = getattr(self, key)
            _require(value is None or value > 0, f"data.{key}", "must be positive or null")
        _require_seed(self.seed, "data.seed")


@dataclass
class ModelConfig:
    """``model``: the network, built by ``devprune.models.build_model``.

    Attributes:
        name: a model of the zoo (``devprune.models.list_models()``), e.g. ``snn-mlp``,
            ``snn-small``, ``snn-braincog-cifar``, ``lenet``, ``vgg16``.
        time_steps: simulation steps T of a spiking model (None = the model's default;
            ignored by ANNs).
        kwargs: further keyword arguments of the model's constructor (e.g. ``hidden``).
    """

    name: str = "snn-mlp"
    time_steps: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(
            self.time_steps is None or 0 < self.time_steps <= MAX_TIME_STEPS, "model.time_steps",
            f"must be in [1, {MAX_TIME_STEPS}] (memory grows with T), or null for the model's "
            f"default; got {self.time_steps}"
        )


Optimizer = Literal["adam", "adamw", "sgd"]
Schedule = Literal["none", "cosine", "step"]
LossName = Literal["rate_mse", "cross_entropy"]
Device = Literal["auto", "cpu", "cuda"]
PruneMode = Literal["reference", "default"]


@dataclass
class TrainConfig:
    """``train``: optimisation. The learning rate is set once per epoch.

    Attributes:
        epochs: number of training epochs.
        optimizer: ``adam``, ``adamw`` or ``sgd`` (momentum / nesterov below apply to sgd).
        lr: peak learning rate.
        weight_decay: L2 (adam, sgd) or decoupled (adamw) weight decay.
        decay_1d: also decay 1-D parameters (biases, norm affine); timm, which the BrainCog
            recipe uses, does not, hence the default false.
        momentum: sgd momentum.
        nesterov: sgd Nesterov momentum.
        schedule: ``none`` (constant lr), ``cosine`` (timm convention: after warm-up,
            lr(e) = min_lr + (lr - min_lr) * (1 + cos(pi * e / epochs)) / 2), or ``step``
            (lr multiplied by ``gamma`` at each epoch in ``milestones``).
        warmup_epochs: linear warm-up from ``warmup_lr`` to ``lr`` over this many epochs
            (any schedule).
        warmup_lr: learning rate of epoch 0 when warming up.
        min_lr: floor of the cosine schedule.
        milestones: epochs (0-based) at which the step schedule multiplies lr by ``gamma``.
        gamma: the step schedule's factor.
        loss: ``rate_mse`` (MSE between output rates and one-hot labels, the papers' SNN
            loss) or ``cross_entropy`` (ANNs).
        seed: seed of weights initialisation, spike encoding, dropout.
        deterministic: ask torch for deterministic kernels (bit-exact resume on CPU).
        device: ``auto`` (cuda when available), ``cpu`` or ``cuda``.
        compile: run the forward pass through ``torch.compile`` (pruner hooks stay eager).
        threads: CPU threads torch may use (0 = torch's default).
        compact_every: shrink the model physically every N epochs, removing units pruning
            killed for good, with optimizer and pruner state (0 = never; docs/COMPACT.md).
        compact_every_batches: the same every N training batches, counted over the run,
            right after the batch's structural step (0 = never): with a method stepping
            every N batches (``prune.dpap.every_batches``), a shrink after each step.
    """

    epochs: int = 10
    optimizer: Optimizer = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    decay_1d: bool = False
    momentum: float = 0.9
    nesterov: bool = True
    schedule: Schedule = "none"
    warmup_epochs: int = 0
    warmup_lr: float = 1e-6
    min_lr: float = 0.0
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    loss: LossName = "rate_mse"
    seed: int = 0
    deterministic: bool = True
    device: Device = "auto"
    compile: bool = False
    threads: int = 0
    compact_every: int = 0
    compact_every_batches: int = 0

    def __post_init__(self) -> None:
        _require(self.epochs > 0, "train.epochs", "must be a positive integer")
        _require(self.compact_every >= 0, "train.compact_every",
                 "must be >= 0 (0 = never shrink the model while training)")
        _require(self.compact_every_batches >= 0, "train.compact_every_batches",
                 "must be >= 0 (0 = never shrink the model within an epoch)")
        _require(self.lr > 0, "train.lr", "must be positive")
        _require(self.weight_decay >= 0, "train.weight_decay", "must be >= 0")
        _require(0 <= self.warmup_epochs < self.epochs, "train.warmup_epochs",
                 f"must be in [0, train.epochs={self.epochs})")
        _require(self.warmup_lr > 0, "train.warmup_lr", "must be positive")
        _require(0 <= self.min_lr <= self.lr, "train.min_lr", "must be in [0, train.lr]")
        _require(self.milestones == sorted(set(self.milestones)), "train.milestones",
                 "must be strictly increasing epoch numbers, e.g. [40, 80, 120]")
        _require(all(m >= 0 for m in self.milestones), "train.milestones",
                 f"must be epoch numbers >= 0 (counted from 0); got {self.milestones}")
        _require(self.gamma > 0, "train.gamma", "must be positive")
        _require(0 <= self.threads <= MAX_THREADS, "train.threads",
                 f"must be in [0, {MAX_THREADS}] (0 = torch's default); got {self.threads}")
        _require_seed(self.seed, "train.seed")


@dataclass
class PruneConfig:
    """``prune``: the pruning method and its settings.

    Attributes:
        method: a registered method (``none`` = dense training, ``dpap``, ``sdsnn``;
            ``devprune.pruning.available_pruners()``).
        mode: ``reference`` (the authors' code exactly: weights zeroed at pruning steps
            only) or ``default`` (hard masks on weights, gradients and optimizer state).
            Passed on to the method's own ``mode`` setting.
        settings: the per-method sections, written in YAML as ``prune.<method>: {...}``
            and validated against that method's config dataclass. Sections of methods
            other than ``method`` are validated too, and kept but unused, so that
            ``--set prune.method=...`` works on any file.
    """

    method: str = "none"
    mode: PruneMode = "default"
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class MeasureConfig:
    """``measure``: workload measurements (firing rates, SOPs, energy) on test samples.

    Attributes:
        every: measure the workload every N epochs and after the last (0 = only at the end).
        subset: number of test samples the workload is measured on.
        energy_mac_pj: energy of one multiply-accumulate (45 nm: 4.6 pJ).
        energy_ac_pj: energy of one accumulate, i.e. one synaptic operation (45 nm: 0.9 pJ).
    """

    every: int = 1
    subset: int = 1000
    energy_mac_pj: float = 4.6
    energy_ac_pj: float = 0.9

    def __post_init__(self) -> None:
        _require(self.every >= 0, "measure.every", "must be >= 0 (0 = only at the end)")
        _require(self.subset > 0, "measure.subset", "must be a positive number of samples")
        _require(self.energy_mac_pj >= 0 and self.energy_ac_pj >= 0, "measure.energy_*_pj",
                 "energies must be >= 0")


@dataclass
class RunConfig:
    """``run``: where the run is written and how often it is checkpointed.

    Attributes:
        name: the run's name (defaults to the preset or file name).
        out: run directory (None = ``runs/<name>``; ``--out`` overrides).
        checkpoint_every: write ``last.pt`` every N epochs (the last epoch always is).
        keep: also keep this many per-epoch snapshots ``epoch-NNN.pt`` (0 = none).
        allow_empty_layers: a run whose pruning removes every unit of a layer ends with
            exit code 3 (a failed outcome) unless this is true.
    """

    name: str = "run"
    out: str | None = None
    checkpoint_every: int = 1
    keep: int = 0
    allow_empty_layers: bool = False

    def __post_init__(self) -> None:
        _require(self.checkpoint_every > 0, "run.checkpoint_every", "must be positive")
        _require(self.keep >= 0, "run.keep", "must be >= 0")
        _require(_is_plain_name(self.name), "run.name",
                 f"{self.name!r} must be one folder name inside runs/ (no '/', '\\', '..', "
                 "leading '.' or control characters; at most 200 characters); choose "
                 "another folder with run.out or --out")


def _is_plain_name(name: str) -> bool:
    """True when ``runs/<name>`` stays one folder inside ``runs/``."""
    return (0 < len(name) <= 200 and not name.startswith(".") and name.strip() == name
            and not any(c in name for c in "/\\:") and name.isprintable())


@dataclass
class Config:
    """A whole experiment. Build it with :func:`load_config` or :func:`config_from_dict`."""

    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def method_config(self) -> Any:
        """The selected method's config dataclass (None for methods without settings)."""
        return self.prune.settings.get(self.prune.method)


# ------------------------------------------------------------------------------------------
# Validation: dict -> dataclasses, with the key path in every message
# ------------------------------------------------------------------------------------------


def _require(ok: bool, path: str, what: str) -> None:
    if not ok:
        raise ConfigError(f"{path}: {what}")


def _require_seed(seed: int, path: str) -> None:
    _require(0 <= seed <= MAX_SEED, path,
             f"must be in [0, 2**63 - 1] (= {MAX_SEED}); got {seed}")


def _reject_non_finite(value: Any, path: str, hint: str = "") -> None:
    """Refuse inf / NaN anywhere in ``value`` (nested mappings and lists included)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{path}: {value!r} is not a finite number; inf and NaN are not "
                          f"allowed{hint}")
    if isinstance(value, dict):
        for key, item in value.items():
            _reject_non_finite(item, _join(path, str(key)))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _reject_non_finite(item, f"{path}[{i}]")


def _default_hint(field_: dataclasses.Field) -> str:
    default = field_.default
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        return f"; give a finite value (default {default!r})"
    return "; give a finite value"


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _check_scalar(value: Any, tp: type, path: str) -> Any:
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp)
    if ok is None:  # a type this validator does not know: let the consumer judge it
        return value
    if not ok:
        raise ConfigError(f"{path}: expected {_describe(tp)}, got {value!r}")
    if tp is int and not INT64_MIN <= value <= INT64_MAX:
        raise ConfigError(f"{path}: {value} is too large; integers must fit in 64 bits "
                          f"([-2**63, 2**63 - 1])")
    if tp is float:
        if abs(value) > MAX_FLOAT:
            shown = f"{value:.6g}" if isinstance(value, float) else f"{str(value)[:12]}..."
            raise ConfigError(f"{path}: {shown} is too large; settings are used in float32 "
                              "arithmetic, so their magnitude must be at most 3.4e38")
        return float(value)
    return value


def _check_value(value: Any, tp: Any, path: str) -> Any:
    """Return ``value`` converted to ``tp`` or raise ConfigError naming ``path``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _check_value(value, option, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: expected {_describe(tp)}, got {value!r}")
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
        raise ConfigError(
            f"{path}: {value!r} is not allowed; choose one of {list(args)}"
            + did_you_mean(value, args)
        )
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        item = args[0] if args else Any
        checked = [_check_value(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(checked) if origin is tuple else checked
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping of keys to values, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value, path)
    return _check_scalar(value, tp, path)


def _build_dataclass(cls: type, raw: Any, path: str) -> Any:
    """Build dataclass ``cls`` from mapping ``raw``; unknown keys and bad types name ``path``."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping (section), got {raw!r}")
    hints = _type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        key = unknown[0]
        raise ConfigError(
            f"{_join(path, key)}: unknown key{did_you_mean(key, fields)}; "
            f"allowed keys in {path or 'the top level'}: {sorted(fields)}"
        )
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in raw.items():
        _reject_non_finite(value, _join(path, key), _default_hint(by_name[key]))
    values = {k: _check_value(v, hints.get(k, Any), _join(path, k)) for k, v in raw.items()}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path}: {err}") from err


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # forward references this validator cannot resolve: check nothing
        return {}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else str(key)


def _build_prune(raw: Any) -> PruneConfig:
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"prune: expected a mapping (section), got {raw!r}")
    raw = dict(raw or {})
    methods = available_pruners()
    method = _check_value(raw.pop("method", "none"), str, "prune.method")
    if method not in methods:
        raise ConfigError(
            f"prune.method: unknown method {method!r}{did_you_mean(method, methods)}; "
            f"choose one of {sorted(methods)}"
        )
    mode = _check_value(raw.pop("mode", "default"), PruneMode, "prune.mode")
    sections = {name: raw.pop(name) for name in list(raw) if name in methods}
    if raw:
        key = next(iter(raw))
        allowed = ["method", "mode", *sorted(methods)]
        raise ConfigError(
            f"prune.{key}: unknown key{did_you_mean(key, allowed)}; allowed keys in prune: "
            f"{allowed} (a method's settings go under prune.<method>)"
        )
    if method != "none" and method not in sections:
        sections[method] = {}
    for name, body in sections.items():
        if pruner_config_class(name) is None and body:
            raise ConfigError(f"prune.{name}: method {name!r} has no settings; remove it")
    settings = {name: _method_settings(name, body, mode) for name, body in sections.items()}
    return PruneConfig(method=method, mode=mode, settings=settings)


def _method_settings(name: str, body: Any, mode: str) -> Any:
    config_cls = pruner_config_class(name)
    if config_cls is None:
        return None
    body = dict(body or {}) if isinstance(body, dict) or body is None else body
    has_mode = any(f.name == "mode" for f in dataclasses.fields(config_cls))
    if has_mode and isinstance(body, dict):
        if "mode" in body and body["mode"] != mode:
            raise ConfigError(
                f"prune.{name}.mode: {body['mode']!r} contradicts prune.mode={mode!r}; "
                "set the mode once, in prune.mode"
            )
        body["mode"] = mode
    return _build_dataclass(config_cls, body, f"prune.{name}")


_SECTIONS = {
    "data": DataConfig, "model": ModelConfig, "train": TrainConfig,
    "measure": MeasureConfig, "run": RunConfig,
}
_TOP_LEVEL = ["description", "base", *_SECTIONS, "prune"]


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Validate a plain mapping (as read from YAML) into a :class:`Config`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"configuration must be a mapping of sections, got {raw!r}")
    unknown = [k for k in raw if k not in _TOP_LEVEL or k == "base"]
    if unknown:
        key = unknown[0]
        hint = "; 'base' is resolved by load_config" if key == "base" else ""
        raise ConfigError(
            f"{key}: unknown top-level key{did_you_mean(key, _TOP_LEVEL)}; allowed: "
            f"{[k for k in _TOP_LEVEL if k != 'base']}{hint}"
        )
    sections = {name: _build_dataclass(cls, raw.get(name), name)
                for name, cls in _SECTIONS.items()}
    description = _check_value(raw.get("description", ""), str, "description")
    return Config(description=description, prune=_build_prune(raw.get("prune")), **sections)


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The resolved configuration as plain data (what ``config.yaml`` holds)."""
    out = {"description": cfg.description}
    for name in ("data", "model", "train"):
        out[name] = dataclasses.asdict(getattr(cfg, name))
    prune: dict[str, Any] = {"method": cfg.prune.method, "mode": cfg.prune.mode}
    for name, settings in cfg.prune.settings.items():
        prune[name] = _plain(dataclasses.asdict(settings)) if settings is not None else {}
    out["prune"] = prune
    out["measure"] = dataclasses.asdict(cfg.measure)
    out["run"] = dataclasses.asdict(cfg.run)
    return out


def _plain(obj: Any) -> Any:
    """Tuples -> lists, so the YAML dump is plain and reloads to the same values."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None)


# Settings that do not change what is computed: they may differ when a run is resumed.
_HASH_EXEMPT = {
    ("description",), ("run",), ("measure",), ("train", "epochs"), ("train", "device"),
    ("train", "compile"), ("train", "threads"), ("data", "root"), ("data", "eval_batch_size"),
    # the same computation up to float rounding; a shrunk checkpoint resumes under either
    ("train", "compact_every"), ("train", "compact_every_batches"),
}


# Settings added after runs were made, with the default that reproduces those runs: while at
# that default they hash as absent, so a run written before them keeps its hash (resume,
# report and compare accept it) and a run that uses them hashes differently.
_ADDED_LATER = {
    ("prune", "dpap", "cadence"): "manual",
    ("prune", "dpap", "end"): None,
    ("prune", "sdsnn", "end"): None,
}


def _hashed_view(cfg: Config) -> dict[str, Any]:
    view = config_to_dict(cfg)
    for key_path in _HASH_EXEMPT:
        node = view
        for key in key_path[:-1]:
            node = node[key]
        node.pop(key_path[-1], None)
    for key_path, default in _ADDED_LATER.items():
        node = view
        for key in key_path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(key_path[-1], default) == default:
            node.pop(key_path[-1], None)
    return view


def config_hash(cfg: Config) -> str:
    """Hash of every setting that changes the computation (resume requires it to match)."""
    text = json.dumps(_hashed_view(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_differences(old: dict[str, Any], cfg: Config, *,
                       include_exempt: bool = False) -> list[str]:
    """Key paths (with both values) where a saved resolved config differs from ``cfg``;
    settings that may change on resume (``_HASH_EXEMPT``) only with ``include_exempt``."""
    new = config_to_dict(cfg)
    diffs: list[str] = []
    _diff(old, new, "", diffs)
    if include_exempt:
        return diffs
    exempt = {".".join(p) for p in _HASH_EXEMPT}
    return [d for d in diffs if not any(d == e or d.startswith(e + ".") or
                                        d.startswith(e + ":") for e in exempt)]


def _diff(old: Any, new: Any, path: str, out: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            _diff(old.get(key, "<absent>"), new.get(key, "<absent>"), _join(path, key), out)
    elif old != new:
        out.append(f"{path}: {old!r} -> {new!r}")


# ------------------------------------------------------------------------------------------
# Overrides and loading
# ------------------------------------------------------------------------------------------


def load_config(source: str, overrides: typing.Sequence[str] = ()) -> Config:
    """Load a preset name or YAML file, resolve ``base:``, apply ``--set`` overrides, validate.

    ``run.name`` defaults to the preset or file name.
    """
    raw, default_name = resolve_source(source)
    raw = apply_overrides(raw, overrides)
    run = raw.get("run")
    if run is None or (isinstance(run, dict) and "name" not in run):
        raw["run"] = {**(run or {}), "name": default_name}
    return config_from_dict(raw)
