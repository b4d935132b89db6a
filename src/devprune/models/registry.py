"""Model registry: build any zoo model by name from the dataset's input shape and classes.

A builder is registered with :func:`register_model` and called as
``builder(in_shape=..., num_classes=..., **kwargs)``; builders of spiking models also take
``time_steps`` (``None``: their paper default). A builder without a ``time_steps``
parameter (an ANN) gets none, and asking for one is a :class:`ConfigError`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from devprune.errors import ConfigError
from devprune.utils.registry import Registry

ModelBuilder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: ModelBuilder
    description: str


_REGISTRY: Registry[ModelEntry] = Registry("model", lambda entry: entry.builder)


def register_model(
    name: str, description: str | None = None
) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register ``builder`` as ``name``; the description defaults to its docstring's first line."""

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        doc = description or (inspect.getdoc(builder) or name).splitlines()[0]
        _REGISTRY.add(name, ModelEntry(name, builder, doc))
        return builder

    return decorate


def list_models() -> dict[str, str]:
    """``{name: one-line description}`` of every registered model, sorted by name."""
    return {name: _REGISTRY[name].description for name in sorted(_REGISTRY)}


def _check_shape(in_shape: Any) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in in_shape)
    except TypeError:
        raise ConfigError(f"in_shape must be a sequence of ints, got {in_shape!r}.") from None
    if not shape or min(shape) < 1:
        raise ConfigError(f"in_shape must have positive dims, got {in_shape!r}.")
    return shape


def build_model(
    name: str,
    *,
    in_shape: tuple[int, ...],
    num_classes: int,
    time_steps: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build zoo model ``name`` for samples shaped ``in_shape`` and ``num_classes`` classes.

    ``in_shape`` is one sample: ``(C, H, W)`` for images, ``(T, C, H, W)`` for event frames.
    ``time_steps`` (spiking models only) defaults to the model's paper value.
    """
    entry = _REGISTRY.lookup(name)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive int, got {num_classes!r}.")
    shape = _check_shape(in_shape)
    if "time_steps" in inspect.signature(entry.builder).parameters:
        kwargs["time_steps"] = time_steps
    elif time_steps is not None:
        raise ConfigError(
            f"model {name!r} is not spiking: time_steps must be None, got {time_steps!r}."
        )
    return _call(entry, in_shape=shape, num_classes=num_classes, **kwargs)


def _call(entry: ModelEntry, **kwargs: Any) -> nn.Module:
    accepted = inspect.signature(entry.builder).parameters
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        options = sorted(k for k in accepted if k not in ("in_shape", "num_classes"))
        raise ConfigError(
            f"model {entry.name!r}: unknown option(s) {unknown}; it accepts {options}."
        )
    return entry.builder(**kwargs)
