"""The one registry implementation: models, datasets and pruning methods are each a
:class:`Registry`, so they share one duplicate policy and one unknown-name message.

Duplicate policy: registering a name again with the *same* object (a module imported twice,
a reload) is a no-op; with a different object it is an error, since two modules would be
fighting over one name.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from devprune.errors import ConfigError

T = TypeVar("T")


def did_you_mean(word: Any, choices: Iterable[Any]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_name_message(kind: str, name: str, known: Iterable[str]) -> str:
    """``unknown dataset 'mnsit' (did you mean 'mnist'?); known: ...``."""
    known = list(known)
    return (f"unknown {kind} {name!r}{did_you_mean(name, known)}; known: "
            f"{', '.join(known) or '(none)'}")


class Registry(dict[str, T], Generic[T]):
    """A name -> entry table. ``identity(entry)`` is what makes two registrations the same
    (the builder function, the dataset factory, the pruner class)."""

    def __init__(self, kind: str, identity: Callable[[T], Any] = lambda entry: entry) -> None:
        super().__init__()
        self.kind = kind
        self.identity = identity

    def add(self, name: str, entry: T) -> None:
        old = self.get(name)
        if old is not None and self.identity(old) is not self.identity(entry):
            raise ConfigError(f"{self.kind} {name!r} is already registered by "
                              f"{self.identity(old)!r}; pick another name")
        self[name] = entry

    def lookup(self, name: str) -> T:
        """The entry of ``name``; an unknown name is a ConfigError with a did-you-mean."""
        try:
            return self[name]
        except KeyError:
            raise ConfigError(unknown_name_message(self.kind, name, sorted(self))) from None

    def copy(self) -> Registry[T]:
        clone: Registry[T] = Registry(self.kind, self.identity)
        clone.update(self)
        return clone
