"""``devprune compare``: a grid of runs (methods x targets x seeds) in one harness, and the
accuracy-connectivity / accuracy-energy frontier it yields.

``grid`` reads and validates the grid, ``execute`` runs its cells (resumable), ``frontier``
aggregates the finished runs into a table and plots.
"""

from devprune.compare.grid import Cell, Grid, load_grid

__all__ = ["Cell", "Grid", "load_grid"]
