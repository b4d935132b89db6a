"""The interface every pruning method implements, and the registry the runner builds from.

A training loop drives a pruner with a handful of calls (this is the whole contract)::

    pruner = build_pruner("dpap", model, example_input, config)
    pruner.bind_optimizer(optimizer)
    for epoch in range(epochs):
        for x, y in loader:
            pruner.on_batch_start()
            out = model(x)
            pruner.on_forward(out, y)
            loss = loss_fn(out, y)
            optimizer.zero_grad(); loss.backward()
            pruner.on_after_backward()
            optimizer.step()
            pruner.on_after_step()
            pruner.on_batch_end()
        events = pruner.on_epoch_end(epoch)     # the structural step; returns loggable events
    torch.save({"pruner": pruner.state_dict(), ...}, path)

Activity is recorded only between ``on_batch_start`` and ``on_batch_end`` while the model is in
training mode, so evaluation passes never disturb the statistics.

Data parallelism (docs/DISTRIBUTED.md) reaches a method through one seam: a
:class:`Synchroniser` the runner installs as ``pruner.synchroniser`` under ``torchrun``
(default None: one process, every call below is a no-op). A method marks its structural step
with :func:`structural_step` (statistics summed over ranks before it, masks made identical
after it) and calls :meth:`Pruner.synchronise` itself for any statistic a per-batch update
reads. The methods never import ``torch.distributed``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Collection
from typing import Any, Protocol, TypeVar

import torch
from torch import nn

from devprune.errors import CheckpointError, ConfigError
from devprune.utils.registry import Registry, unknown_name_message


class Synchroniser(Protocol):
    """Keeps the pruners of data-parallel ranks in agreement (the implementation is
    :class:`devprune.distributed.StatisticsSync`).

    The pruner calls :meth:`sum_statistics` (through :meth:`Pruner.synchronise` and
    :func:`structural_step`) and :meth:`agree_on_masks`; the runner calls :meth:`rebase`.
    """

    def sum_statistics(self, names: Collection[str] | None = None) -> None:
        """Sum the pruner's :meth:`Pruner.statistics` (or the entries ``names``) over ranks,
        in place, counting every sample once."""

    def agree_on_masks(self) -> None:
        """Make every rank hold rank 0's masks (a guard: they should already agree)."""

    def rebase(self) -> None:
        """Take the pruner's current statistics as already summed over ranks: the runner
        calls it after loading a checkpoint's pruner state and after an in-training shrink
        replaced the statistics tensors."""


_Step = TypeVar("_Step", bound=Callable[..., Any])


def structural_step(method: _Step) -> _Step:
    """Decorator for a pruner's structural step (the method that decides what to prune).

    With a synchroniser installed, statistics are summed over ranks before the step, so
    every rank decides from the same global evidence, and masks are made identical after it.
    Without one (a single process) it calls the step unchanged.
    """

    @functools.wraps(method)
    def step(self: Pruner, *args: Any, **kwargs: Any) -> Any:
        sync = self.synchroniser
        if sync is None:
            return method(self, *args, **kwargs)
        sync.sum_statistics()
        result = method(self, *args, **kwargs)
        sync.agree_on_masks()
        return result

    return step  # type: ignore[return-value]


class Pruner:
    """Base class: dense training (no pruning). Methods override the hooks they need."""

    name = "none"
    #: set by the runner in a data-parallel run (see :class:`Synchroniser`); None = one process
    synchroniser: Synchroniser | None = None

    def __init__(self, model: nn.Module, example_input: Any = None, config: Any = None) -> None:
        self.model = model
        self.example_input = example_input
        self.config = config
        self.optimizer: torch.optim.Optimizer | None = None
        self.masks = None  # a devprune.masks.MaskSet for methods that prune

    # -- wiring -----------------------------------------------------------------------------
    def bind_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Give the pruner the optimizer whose state of pruned entries it must keep at zero."""
        self.optimizer = optimizer

    def detach(self) -> None:
        """Remove every hook this pruner registered on the model."""

    # -- per batch --------------------------------------------------------------------------
    def on_batch_start(self) -> None:
        """Called before the forward pass of a training batch."""

    def on_forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Called after the forward pass of a training batch with its outputs and labels."""

    def on_after_backward(self) -> None:
        """Called after ``loss.backward()`` and before ``optimizer.step()``."""

    def on_after_step(self) -> None:
        """Called right after ``optimizer.step()``."""

    def on_batch_end(self) -> None:
        """Called once the batch is done; consumes the activity recorded in it."""

    # -- per epoch --------------------------------------------------------------------------
    def on_epoch_end(self, epoch: int) -> dict[str, Any]:
        """The structural step of the method; returns events for the run's metrics log."""
        return {}

    def epoch_fields(self, events: dict[str, Any]) -> list[str]:
        """The method's fields of the runner's one-line epoch summary, from the ``events`` its
        :meth:`on_epoch_end` returned. The default reads the shared keys (see
        :func:`default_epoch_fields`); a method whose events say more overrides it."""
        return default_epoch_fields(events)

    # -- data parallelism -------------------------------------------------------------------
    def synchronise(self, names: Collection[str] | None = None) -> None:
        """Sum :meth:`statistics` (or only the entries ``names``) over data-parallel ranks.

        :func:`structural_step` does this before each structural step; a method calls it
        itself only for statistics that its per-batch update reads. No-op in one process.
        """
        if self.synchroniser is not None:
            self.synchroniser.sum_statistics(names)

    # -- in-training compaction (train.compact_every, docs/COMPACT.md) ----------------------
    def compaction_refusal(self) -> str | None:
        """Why this method's state cannot follow an in-training shrink of the model (None: it
        can, through :meth:`shrink`). ``train.compact_every`` is refused with this reason.
        A method that may revive a dead unit (regrowth) must refuse."""
        return f"method {self.name!r} does not declare how its state shrinks"

    def removal_is_final(self) -> bool:
        """Whether the units dead now stay dead for the rest of the run (no later step may
        revive them or count them), so that a scheduled shrink may remove them now; it is
        skipped while False. Default: True (a method that shrinks never revives)."""
        return True

    def shrinkable_unread(self) -> frozenset[str]:
        """Layers whose units an in-training shrink may also remove when nothing reads them
        (every outgoing entry pruned) although their own weights are kept: layers the method
        does not track, whose readers can lose the columns without changing a decision.
        Default: none."""
        return frozenset()

    def shrink(self, keep: Any) -> bool:
        """The model just lost dead units: slice every per-unit tensor of the method (masks,
        statistics, reserves) as ``keep`` (a :class:`devprune.compact.live.Keep`: kept rows
        ``keep_out[layer]`` and columns ``keep_in[layer]``, None = all, of each weight layer)
        says, so that training continues as on the masked model. Returns False when the
        method cannot (the default)."""
        return False

    # -- state ------------------------------------------------------------------------------
    def statistics(self) -> dict[str, torch.Tensor]:
        """The accumulators a structural step decides from, by name, that are *sums over
        training samples*: under DDP each rank adds its own shard's samples and the
        synchroniser sums them over ranks. They must be cumulative; to restart one, assign
        a new tensor (the synchroniser then starts its count again) instead of zeroing it
        in place. State that is already identical on every rank (anything computed from
        the weights or from DDP-averaged gradients) does not belong here."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"method": self.name, "version": 1}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        method = state.get("method")
        if method != self.name:
            raise CheckpointError(
                f"checkpoint holds pruner state of method {method!r} but this run uses "
                f"{self.name!r}; resume with the same prune.method or start a new run"
            )


def default_epoch_fields(events: dict[str, Any]) -> list[str]:
    """Epoch-line fields from the event keys methods share: ``time`` (the simulated length
    after a time-side step, DPAP) and ``regrown`` (synapses regenerated this epoch, SD-SNN,
    SET, RigL)."""
    fields = []
    time_side = events.get("time")
    if time_side:
        fields.append(f"T {time_side['time_steps']}/{time_side['full_time_steps']}")
    if events.get("regrown") is not None:
        fields.append(f"regrown {events['regrown']}")
    return fields


_REGISTRY: Registry[tuple[type[Pruner], type | None, str]] = Registry(
    "pruning method", lambda entry: entry[0])


def register_pruner(
    name: str, cls: type[Pruner], config_cls: type | None = None, description: str = ""
) -> None:
    """Make a method available to ``build_pruner`` and the runner (``prune.method``)."""
    if config_cls is not None and not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config class of pruner {name!r} must be a dataclass")
    _REGISTRY.add(name, (cls, config_cls, description))


def _load_builtin_methods() -> None:
    # Importing the package registers every built-in method (its __init__ imports them);
    # done lazily so that `devprune.pruning.base` itself stays import-cycle free.
    import devprune.pruning  # noqa: F401


def available_pruners() -> dict[str, str]:
    """Registered method names with their one-line descriptions."""
    _load_builtin_methods()
    return {name: desc for name, (_, _, desc) in sorted(_REGISTRY.items())}


def pruner_config_class(name: str) -> type | None:
    _load_builtin_methods()
    if name not in _REGISTRY:
        known = sorted(_REGISTRY)
        raise ConfigError(f"prune.method: {unknown_name_message('method', name, known)}")
    return _REGISTRY[name][1]


def build_pruner(
    name: str, model: nn.Module, example_input: Any = None, config: Any = None, *,
    epochs: int | None = None, batches_per_epoch: int | None = None,
) -> Pruner:
    """Construct the registered pruner ``name`` for ``model``.

    ``config`` may be the method's config dataclass, a plain dict of its fields, or None for
    the defaults. ``epochs`` and ``batches_per_epoch`` declare the run's length: methods that
    can (``for_run`` on their config class, e.g. DPAP) then fit their schedule to it, with
    the keys of a dict ``config`` still winning.
    """
    config_cls = pruner_config_class(name)
    cls = _REGISTRY[name][0]
    run_length = (epochs, batches_per_epoch)
    if run_length != (None, None):
        _check_run_length(name, config_cls, config, epochs, batches_per_epoch)
    if config_cls is not None:
        if config is None:
            config = {}
        if isinstance(config, dict):
            known = {f.name for f in dataclasses.fields(config_cls)}
            unknown = sorted(set(config) - known)
            if unknown:
                raise ConfigError(
                    f"prune.{name}: unknown key(s) {unknown}; allowed: {sorted(known)}"
                )
            config = (config_cls(**config) if run_length == (None, None)
                      else config_cls.for_run(epochs, batches_per_epoch, **config))
        _require_finite(config, f"prune.{name}")
    return cls(model, example_input, config)


def _check_run_length(name: str, config_cls: type | None, config: Any,
                      epochs: int | None, batches_per_epoch: int | None) -> None:
    """Refuse a run length the method cannot use or that is incomplete."""
    if config_cls is None or not hasattr(config_cls, "for_run"):
        raise ConfigError(f"{name!r} does not fit its schedule to the run length; leave out "
                          "epochs= and batches_per_epoch= (or set its schedule keys)")
    if not (isinstance(config, dict) or config is None):
        raise ConfigError(f"{name!r}: epochs= fits the schedule of a dict of settings; give "
                          "the settings as a dict, or a finished config without epochs=")
    examples = {"epochs": "epochs=3", "batches_per_epoch": "batches_per_epoch=len(loader)"}
    for key, value in (("epochs", epochs), ("batches_per_epoch", batches_per_epoch)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"build_pruner({name!r}): {key} must be a positive integer, "
                              f"e.g. {examples[key]}; got {value!r}")


def _require_finite(value: Any, where: str) -> None:
    """Refuse a NaN or infinite number anywhere in a method's settings (a NaN constant would
    make every comparison false and silently turn pruning off)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _require_finite(getattr(value, f.name), f"{where}.{f.name}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _require_finite(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _require_finite(item, f"{where}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: {value} is not a finite number; give a real value")


register_pruner("none", Pruner, None, "dense training, nothing is pruned")
