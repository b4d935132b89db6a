"""Dependencies point one way (docs/ARCHITECTURE.md): the core never imports the runner, the
command modules or the CLI, not even inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "devprune"
CORE = ("snn", "models", "kinds.py", "structure.py", "masks.py", "pruning", "measure", "compact",
        "export", "distributed.py")
ABOVE = ("devprune.runner", "devprune.commands", "devprune.compare", "devprune.cli")


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return names


def _core_files() -> list[Path]:
    files: list[Path] = []
    for entry in CORE:
        path = SRC / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_core_module_imports_nothing_above_the_core(path: Path) -> None:
    upward = [name for name in _imports(path)
              if any(name == top or name.startswith(top + ".") for top in ABOVE)]
    assert not upward, f"{path.relative_to(SRC)} imports {upward}"
