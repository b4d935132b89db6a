"""Errors a user can act on.

Everything raised for bad input derives from :class:`DevpruneError`; the CLI prints such an
error as one line (no traceback) and exits non-zero. Messages name the field or file at fault
and say how to fix it.
"""

from __future__ import annotations


class DevpruneError(Exception):
    """Base class of errors caused by the user's input, files or environment."""


class ConfigError(DevpruneError, ValueError):
    """A configuration key or value is invalid."""


class DataError(DevpruneError):
    """A dataset is missing, unreadable or corrupt."""


class ChecksumError(DataError):
    """A file's SHA-256 does not match the published one."""


class CheckpointError(DevpruneError):
    """A checkpoint is corrupt or does not match the model / configuration."""


class ModelStructureError(DevpruneError, ValueError):
    """A model's structure cannot be analysed or does not fit the requested operation."""


class LayoutError(DevpruneError, ValueError):
    """A tensor has the wrong layout (e.g. single-step input fed to a multi-step layer)."""


class TrainingDivergedError(DevpruneError):
    """The loss became NaN or infinite."""
