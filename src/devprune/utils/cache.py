"""Where devprune keeps what it downloads or builds: one user cache, overridable per kind."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(name: str, env_var: str) -> Path:
    """``$env_var`` if set (user-expanded), else ``~/.cache/devprune/<name>``; not created."""
    env = os.environ.get(env_var, "").strip()
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "devprune" / name
