"""CLI sub-commands of the core areas that read run directories: ``compact``, ``measure``,
``export``.

They sit above the core: they read a run through :mod:`devprune.runner.runmodel` and the
runner's files, then call :mod:`devprune.compact`, :mod:`devprune.measure` and
:mod:`devprune.export`, which never import the runner themselves. Each module exposes
``register(subparsers)`` for :data:`devprune.cli.COMMAND_MODULES`.
"""
