"""Pruning methods behind one interface (:class:`devprune.pruning.base.Pruner`)."""

from devprune.pruning.base import Pruner, available_pruners, build_pruner, register_pruner

__all__ = ["Pruner", "available_pruners", "build_pruner", "register_pruner"]
