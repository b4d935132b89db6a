"""When the baseline methods prune: step counting and the gradual-pruning schedule.

A *step* is one structural decision point: the end of an epoch (``every_batches = 0``) or the
end of every ``every_batches``-th training batch, the cadence DPAP uses for short runs. Step
indices count from 0, so ``start``/``end`` in a method's settings are in epochs or in periods
of ``every_batches`` batches.
"""

from __future__ import annotations

from dataclasses import dataclass


def gmp_keep_fraction(step: int, start: int, end: int, target: float,
                      initial: float = 1.0) -> float:
    """Fraction of weights kept after step ``step`` under the cubic schedule of Zhu & Gupta
    (2017), written for the kept fraction: ``k = target + (initial - target) (1 - p)^3`` with
    progress ``p = (step - start) / (end - start)`` clipped to [0, 1].

    Nothing is pruned before ``start``; from ``end`` on, ``target`` is kept. ``start == end``
    is the one-shot schedule: everything is pruned at that single step.
    """
    if step < start:
        return initial
    if step >= end:
        return target
    progress = (step - start) / (end - start)
    return target + (initial - target) * (1.0 - progress) ** 3


@dataclass
class StepClock:
    """Counts training batches and says when a structural step falls due."""

    every_batches: int = 0
    batches: int = 0
    steps: int = 0  # steps taken so far: the next step's index

    def batch_done(self) -> int | None:
        """Call once per training batch; returns the index of a step now due, else None."""
        self.batches += 1
        if self.every_batches and self.batches % self.every_batches == 0:
            return self._take()
        return None

    def next_batch_is_step(self) -> bool:
        """True when the batch about to run ends with a step (its gradients are the signal)."""
        return bool(self.every_batches) and (self.batches + 1) % self.every_batches == 0

    def epoch_done(self) -> int | None:
        """Call at every epoch end; returns the index of a step now due, else None."""
        return None if self.every_batches else self._take()

    def _take(self) -> int:
        self.steps += 1
        return self.steps - 1

    def state_dict(self) -> dict[str, int]:
        return {"batches": self.batches, "steps": self.steps}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.batches, self.steps = int(state["batches"]), int(state["steps"])
