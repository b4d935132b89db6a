"""Pruning methods behind one interface (:class:`devprune.pruning.base.Pruner`).

Importing this package registers every built-in method: the two published ones (``dpap``,
``sdsnn``) and the baselines they are compared against (``magnitude``, ``random``, ``lth``,
``set``, ``rigl``); :func:`available_pruners` lists them.
"""

# importing the method modules registers them
from devprune.pruning import (  # noqa: F401
    dpap,
    dynamic_sparse,
    lottery,
    magnitude,
    sdsnn,
)
from devprune.pruning.base import Pruner, available_pruners, build_pruner, register_pruner

__all__ = ["Pruner", "available_pruners", "build_pruner", "register_pruner"]
