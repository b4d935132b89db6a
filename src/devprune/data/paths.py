"""Where datasets live on disk: ``--root``, else ``$DEVPRUNE_DATA``, else the user cache."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from devprune.errors import DataError
from devprune.utils.cache import cache_dir

ENV_VAR = "DEVPRUNE_DATA"


def default_root() -> Path:
    """The data root used when none is given: ``$DEVPRUNE_DATA`` or ``~/.cache/devprune/data``."""
    return cache_dir("data", ENV_VAR)


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else :func:`default_root`; user-expanded, not created."""
    if root is None or str(root).strip() == "":
        return default_root()
    return Path(root).expanduser()


def ensure_writable_dir(path: Path) -> Path:
    """Create ``path`` if needed and prove it is writable by creating a probe file in it.

    Checking the permission bits is not enough (root ignores them, network mounts lie), so
    the probe is the real test. Raises :class:`DataError` saying how to pick another root.
    """
    fix = f"pass --root DIR (or set {ENV_VAR}) to a writable directory"
    if path.exists() and not path.is_dir():
        raise DataError(f"data root {path} exists but is not a directory: {fix}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-"):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise DataError(f"data directory {path} is not writable ({reason}): {fix}") from err
    return path
