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


@dataclass(frozen=True)
class SettlingCadence:
    """A developmental schedule fitted to a run's length (docs/DPAP.md#dpap-run-length)."""

    every_batches: int  # 0 = one step per epoch
    start: int          # first step that prunes
    e0: int             # onset of g(e)
    end: int | None     # last step that prunes (None: the run's end)


def settling_cadence(epochs: int, batches_per_epoch: int, kappa: float, *,
                     every_batches: int | None = None, folds: int = 4, epoch_onset: int = 5,
                     min_onset: int = 2) -> SettlingCadence:
    """The step cadence under which the structure develops on a trained network and has
    settled when the last epoch begins.

    Settled: ``g(e) = exp(-int((e - e0) / kappa))`` has fallen by ``folds`` factors of e,
    which takes ``folds * kappa`` steps after the onset ``e0``. Trained: runs of 3 or more
    epochs start pruning after the first epoch (the reference prunes after epoch 5 of
    hundreds); shorter ones after ``min_onset`` periods. Runs long enough for one step per
    epoch keep the reference's per-epoch steps from epoch ``epoch_onset``; shorter ones step
    every N batches, N as large as fits (the longest statistics windows). A one-epoch run
    settles by its end instead. ``end`` is the last step before the last epoch, so no step
    of the last epoch prunes even where ``g`` has not quite reached zero. ``every_batches``
    imposes N (0: per-epoch steps); the onset and the end then follow it.
    """
    if epochs < 1 or batches_per_epoch < 1:
        raise ValueError(f"need epochs >= 1 and batches_per_epoch >= 1, got {epochs} and "
                         f"{batches_per_epoch}")
    if every_batches == 0 or (every_batches is None
                              and epochs - 1 >= epoch_onset + folds * kappa):
        return SettlingCadence(0, epoch_onset, epoch_onset, epochs - 2 if epochs > 1 else None)
    warmup = batches_per_epoch if epochs >= 3 else 0
    developing = batches_per_epoch * max(epochs - 1, 1)  # batches before the last epoch

    def onset(every: int) -> int:
        # step k ends batch every * (k + 1): the first one past the warm-up is warmup // every
        return max(min_onset, warmup // every)

    def settles(every: int) -> bool:  # g <= e^-folds at the last epoch's first step
        return onset(every) + folds * kappa <= developing // every

    every = every_batches or max(1, int((developing - warmup) // (folds * kappa)))
    while not every_batches and every > 1 and not settles(every):
        every -= 1
    # the last step ending inside the epochs before the last (a one-epoch run: no end)
    end = developing // every - 1 if epochs > 1 else None
    return SettlingCadence(every, onset(every), onset(every), end)


def upcoming_step(batches: int, every_batches: int, next_epoch_step: int) -> int:
    """Index of the structural step the current training batch's period ends with: with
    N-batch steps the period this batch falls in, else (one step per epoch) the next epoch's."""
    return batches // every_batches if every_batches else next_epoch_step
