"""SD-SNN: dendritic-spine ranges, neurotrophic pruning rates and synaptic regeneration
(Information Sciences 2025; specification: docs/SDSNN.md#sdsnn-method).

Per epoch (``on_epoch_end(e)``, e counted from 0 as in the reference):

* e = 0: every weight gets the range ``[-max(W), max(W)]`` of its layer (``spine_ranges``);
* e >= 1: ranges expand / shrink from the weights (every prunable layer; only the linear
  ones with ``ranges_fc_only_bug_compat``, reproducing the BrainCog/SR-CIFAR code,
  docs/SDSNN.md#sdsnn-conv-range-bug);
* e > ``clip_after`` (default C): weights are clipped into their ranges;
* e > 2C: regeneration (``regrowth``), then neuron pruning by range-width importance with a
  history set, conv layers first, then each layer's neurotrophic rate update.

Every epoch constant of the reference is relative to C (its literal 37 is 2C+1, 60 is
2C+1+23), so a small C gives a time-scaled run that reaches pruning within a few epochs.
With ``every_batches = N`` a step runs every N training batches instead of every epoch, and
every epoch constant counts those steps (as DPAP's ``every_batches``).

``default`` mode adds what a short run needs (docs/SDSNN.md#sdsnn-deviations): units that did
not fire over the period rank below every active one (``silent_first``), one step removes
at most ``max_step_fraction`` of a layer's units, and regeneration can revive a pruned
neuron from the gradient its synapses would get through its outgoing weights
(``regrowth.DeadUnitGradient``).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from devprune.compact.live import LiveMaskSet
from devprune.cpu_ops import any_true, array, binary, mul_mask, row_counts
from devprune.errors import CheckpointError, ConfigError
from devprune.pruning.activity import ActivityRecorder
from devprune.pruning.base import register_pruner, structural_step
from devprune.pruning.masked import MaskedPruner, select_layers
from devprune.pruning.regrowth import (
    DeadUnitGradient,
    RegrowthTracker,
    candidate_signal,
    regrown_start_values,
    regrowth_percentile,
)
from devprune.pruning.schedules import upcoming_step
from devprune.pruning.spine_ranges import MAX_COUNT_THRESHOLD, SpineRanges
from devprune.structure import PrunableLayer, discover

# Reference literals expressed relative to C: alpha decays until 60 = 37 + 23.
REFERENCE_FC_GAIN_WINDOW = 60 - 37
# SR MNIST "pruned" tests as fractions of fan-in entries: fc1 row sum < 20 of 40*7*7 = 1960,
# conv2 filter sum < 10 of 15*3*3 = 135 (the others: docs/SDSNN.md#sdsnn-pruned-count).
REFERENCE_FC_PRUNED_FRACTION = 20 / 1960
REFERENCE_CONV_PRUNED_FRACTION = 10 / 135
# default mode: the most of a layer's units one step may newly prune (docs/SDSNN.md)
DEFAULT_MAX_STEP_FRACTION = 0.1

Mode = Literal["default", "reference"]
RegrowSignal = Literal["auto", "weight", "magnitude", "gradient"]


@dataclass
class SDSNNConfig:
    """``prune.sdsnn``: SD-SNN settings. Defaults are the SR MNIST code's
    (docs/SDSNN.md#sdsnn-variants).

    Attributes:
        mode: ``default`` (hard masks) or ``reference`` (weights zeroed at epoch end only);
            set by ``prune.mode``.
        include / exclude: glob patterns over layer names choosing the pruned layers
            (default: every weight layer but the output layer).
        count_threshold: C, consecutive-epoch count of the range dynamics (``spines_num``).
            Pruning and regrowth start after epoch 2C; smaller C time-scales the run.
        shrink_factor: range scale after C epochs of decreasing |w|.
        clip_after: weights are clipped into their ranges from epoch > this (None = C).
        static_clip_layers: glob patterns of layers NOT pruned whose weights are still
            clipped into their epoch-0 range ``+-max(W)`` forever (SR's fc2: ``["*out*"]``).
        ranges_fc_only_bug_compat: update ranges of linear layers only; conv ranges stay at
            their epoch-0 value (BrainCog / SR-CIFAR indentation bug,
            docs/SDSNN.md#sdsnn-conv-range-bug).
        fc_rate / conv_rate: initial pruning rates in percent of units.
        fc_gain / fc_gain_tail / fc_gain_window / fc_rate_divisor: FC rule
            ``rho += alpha(e) * (N - N_pruned) / divisor`` with
            ``alpha = fc_gain * exp(-(e - 2C - 1))`` up to epoch 2C+1+window, then the tail.
        conv_gain_decay: conv rule ``rho += exp(-(e-2C-1)/decay) * alive_l / alive_next``.
        fc_pruned_fraction / conv_pruned_fraction: a unit counts as pruned for the rate rules
            when fewer than this fraction of its incoming entries are kept.
        pruned_fraction_overrides: glob -> fraction, per-layer exceptions to the two above.
        next_pruned_fraction_overrides: glob -> fraction used when a conv layer's rate rule
            counts the pruned units of the matching NEXT layer (default: that layer's own
            fraction). BrainCog's last conv counts fc_prun rows with < 20 kept entries while
            fc_prun's own rule uses < 50.
        conv_history: conv layers keep a history set (SR MNIST/N-MNIST/DVS code: no, it
            re-zeroes its current bottom-k filters every epoch).
        regrowth: enable synaptic regeneration (SR N-MNIST: off).
        regrow_signal: ``weight`` (signed retrained weight, the reference), ``magnitude``
            (|w|), ``gradient`` (|summed gradient over the epoch|, the only signal hard masks
            leave), ``auto`` = ``weight`` in reference mode, ``gradient`` in default mode.
        regrow_p0_fc / regrow_p0_conv: percentile offset p0 of ``p(e) = min(cap, p0 +
            growth^(e-2C-1))``; regrow_growth, regrow_cap: its base and cap.
        regrow_count_fc / regrow_count_conv: C_g, a candidate is restored when its count
            exceeds it (strictly).
        every_batches: 0 = one step per epoch (reference); N > 0 = one step every N training
            batches, and C, 2C+1, the gain window and the regrowth schedule count steps.
        silent_first: units with no activity over the step's period rank below every active
            unit (None = on in default mode, off in reference mode).
        max_step_fraction: the most of a layer's units one step may newly prune, the least
            important first (None = 0.1 in default mode, 1 = no cap in reference mode).
        end: the last step that prunes or regrows (None = none, the reference); ranges and
            clipping go on after it. Short runs set it so the last epoch trains a settled
            structure (docs/SDSNN.md#sdsnn-end).
    """

    mode: Mode = "default"
    include: list[str] | None = None
    exclude: list[str] | None = None
    count_threshold: int = 18
    shrink_factor: float = 0.75
    clip_after: int | None = None
    static_clip_layers: list[str] = field(default_factory=list)
    ranges_fc_only_bug_compat: bool = False
    fc_rate: float = 35.0
    conv_rate: float = 5.0
    fc_gain: float = 1.0
    fc_gain_tail: float = 0.00075
    fc_gain_window: int = REFERENCE_FC_GAIN_WINDOW
    fc_rate_divisor: float = 10.0
    conv_gain_decay: float = 5.0
    fc_pruned_fraction: float = REFERENCE_FC_PRUNED_FRACTION
    conv_pruned_fraction: float = REFERENCE_CONV_PRUNED_FRACTION
    pruned_fraction_overrides: dict[str, float] = field(default_factory=dict)
    next_pruned_fraction_overrides: dict[str, float] = field(default_factory=dict)
    conv_history: bool = True
    regrowth: bool = True
    regrow_signal: RegrowSignal = "auto"
    regrow_p0_fc: float = 60.0
    regrow_p0_conv: float = 65.0
    regrow_count_fc: int = 10
    regrow_count_conv: int = 18
    regrow_growth: float = 1.1
    regrow_cap: float = 99.0
    every_batches: int = 0
    silent_first: bool | None = None
    max_step_fraction: float | None = None
    end: int | None = None

    def __post_init__(self) -> None:
        _check_choice(self.mode, ("default", "reference"), "mode")
        _check_choice(self.regrow_signal, ("auto", "weight", "magnitude", "gradient"),
                      "regrow_signal")
        _check(1 <= self.count_threshold <= MAX_COUNT_THRESHOLD, "count_threshold",
               f"must be an integer in [1, {MAX_COUNT_THRESHOLD}]")
        _check(0 < self.shrink_factor <= 1, "shrink_factor", "must be in (0, 1]")
        _check(self.clip_after is None or self.clip_after >= 0, "clip_after", "must be >= 0")
        for name in ("fc_rate", "conv_rate", "regrow_p0_fc", "regrow_p0_conv"):
            _check(0 <= getattr(self, name) <= 100, name, "must be a percentage in [0, 100]")
        _check(0 < self.regrow_cap <= 100, "regrow_cap", "must be in (0, 100]")
        _check(self.regrow_growth > 0, "regrow_growth", "must be positive")
        for name in ("fc_gain", "fc_gain_tail", "fc_gain_window", "regrow_count_fc",
                     "regrow_count_conv"):
            _check(getattr(self, name) >= 0, name, "must be >= 0")
        for name in ("fc_rate_divisor", "conv_gain_decay"):
            _check(getattr(self, name) > 0, name, "must be positive")
        fractions = {"fc_pruned_fraction": self.fc_pruned_fraction,
                     "conv_pruned_fraction": self.conv_pruned_fraction}
        for name in ("pruned_fraction_overrides", "next_pruned_fraction_overrides"):
            fractions |= {f"{name}[{k!r}]": v for k, v in getattr(self, name).items()}
        for name, value in fractions.items():
            _check(0 <= value <= 1, name, "must be a fraction of fan-in in [0, 1]")
        _check(isinstance(self.every_batches, int) and self.every_batches >= 0,
               "every_batches", "must be an integer >= 0 (0 = one step per epoch)")
        _check(self.end is None or (isinstance(self.end, int) and self.end > self.prune_after),
               "end", f"must be a step index after 2C = {self.prune_after} (or null: no end)")
        _check(self.max_step_fraction is None or 0 < self.max_step_fraction <= 1,
               "max_step_fraction", "must be a fraction in (0, 1] (1 = no cap) or null")
        if self.mode == "default" and self.regrow_signal in ("weight", "magnitude"):
            raise ConfigError(
                f"prune.sdsnn.regrow_signal: {self.regrow_signal!r} needs prune.mode=reference "
                "(hard masks keep pruned weights at zero, so they carry no signal); use "
                "'gradient' or 'auto'"
            )

    @property
    def prune_after(self) -> int:
        """Pruning and regrowth run at epochs > 2C (the reference's e > 36)."""
        return 2 * self.count_threshold

    def develops_at(self, step: int) -> bool:
        """Whether step ``step`` prunes and regrows: after 2C and up to ``end``."""
        return step > self.prune_after and (self.end is None or step <= self.end)

    @property
    def clip_start(self) -> int:
        return self.count_threshold if self.clip_after is None else self.clip_after

    @property
    def silent_units_first(self) -> bool:
        return self.mode == "default" if self.silent_first is None else self.silent_first

    @property
    def step_cap(self) -> float:
        if self.max_step_fraction is not None:
            return self.max_step_fraction
        return DEFAULT_MAX_STEP_FRACTION if self.mode == "default" else 1.0

    @property
    def signal(self) -> str:
        if self.regrow_signal != "auto":
            return self.regrow_signal
        return "weight" if self.mode == "reference" else "gradient"


def _check(ok: bool, name: str, what: str) -> None:
    if not ok:
        raise ConfigError(f"prune.sdsnn.{name}: {what}")


def _check_choice(value: str, choices: tuple[str, ...], name: str) -> None:
    _check(value in choices, name, f"{value!r} is not one of {list(choices)}")


# --------------------------------------------------------------------------------------------
# Neurotrophic rate rules (docs/SDSNN.md#sdsnn-rates)
# --------------------------------------------------------------------------------------------
def fc_gain(epoch: int, start: int, cfg: SDSNNConfig) -> float:
    """alpha(e): ``a0 * exp(-(e - start))`` up to ``start + window``, then ``a_inf``."""
    if epoch <= start + cfg.fc_gain_window:
        return cfg.fc_gain * math.exp(-(epoch - start))
    return cfg.fc_gain_tail


def fc_rate_step(rate: float, epoch: int, start: int, units: int, pruned: int,
                 cfg: SDSNNConfig) -> float:
    return min(100.0, rate + fc_gain(epoch, start, cfg) * (units - pruned) / cfg.fc_rate_divisor)


def conv_rate_step(rate: float, epoch: int, start: int, alive: int, alive_next: int,
                   cfg: SDSNNConfig) -> float:
    ratio = alive / max(alive_next, 1)  # a fully pruned next layer: no division by zero
    return min(100.0, rate + math.exp(-(epoch - start) / cfg.conv_gain_decay) * ratio)


def range_width_importance_per_unit(width: torch.Tensor, mask: torch.Tensor,
                                    *, inplace: bool = False) -> torch.Tensor:
    """``I_i = sum_j mask_ij * R_ij`` over each unit's incoming entries (``inplace``: zero
    the pruned entries of ``width`` itself, a scratch buffer)."""
    if inplace:
        # R >= 0 is finite: x * 1 == x, x * 0 == 0
        return mul_mask(width, mask, out=width).flatten(1).sum(1)
    return width.masked_fill(~mask, 0.0).flatten(1).sum(1)


def bottom_units(importance: torch.Tensor, rate: float) -> torch.Tensor:
    """Bool vector of the ``int(N * rate / 100)`` least important units: the reference's
    plain truncation, evaluated in the same order. Ties go in index order (a stable sort);
    the reference's ``argsort`` is not stable, so its choice among ties is arbitrary."""
    n = importance.numel()
    k = min(n, int(n * rate / 100))
    chosen = torch.zeros(n, dtype=torch.bool, device=importance.device)
    chosen[torch.argsort(importance, stable=True)[:k]] = True
    return chosen


def pruned_entry_limit(fraction: float, fan_in: int) -> float:
    """The kept-entry count below which a unit counts as pruned, ``fraction * fan_in``,
    rounded to 1e-6 so that a fraction written as the exact quotient of the reference's
    literal (e.g. 20/2304) gives that literal despite the last bit of float rounding."""
    return round(fraction * fan_in, 6)


def full_shape(selection: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A per-kernel ``[out, in]`` selection of a conv layer expanded to the weight's shape."""
    if selection.shape == mask.shape:
        return selection
    return selection.reshape(*selection.shape, *([1] * (mask.dim() - 2))).expand_as(mask)


def silent_last(importance: torch.Tensor, silent: torch.Tensor) -> torch.Tensor:
    """``importance`` with the silent units moved below every active one (their own order
    kept): importance is >= 0, so subtracting ``max + 1`` puts them all under zero."""
    if not bool(silent.any()):
        return importance
    return torch.where(silent, importance - (importance.max() + 1), importance)


def cap_selection(chosen: torch.Tensor, importance: torch.Tensor, cap: int) -> torch.Tensor:
    """Keep at most ``cap`` of the ``chosen`` units, the least important first."""
    index = chosen.nonzero().flatten()
    if index.numel() <= cap:
        return chosen
    keep = index[torch.argsort(importance[index], stable=True)[:cap]]
    capped = torch.zeros_like(chosen)
    capped[keep] = True
    return capped


# --------------------------------------------------------------------------------------------
# The pruner
# --------------------------------------------------------------------------------------------
class SDSNNPruner(MaskedPruner):
    """SD-SNN on any model ``devprune.structure.discover`` understands (SNN or ANN)."""

    name = "sdsnn"
    mask_set = LiveMaskSet

    def __init__(self, model: nn.Module, example_input: Any = None,
                 config: SDSNNConfig | None = None) -> None:
        config = config or SDSNNConfig()
        structure = discover(model, example_input)
        chosen = select_layers(structure, config.include, config.exclude)
        super().__init__(model, example_input, config, mode=config.mode, layers=chosen,
                         structure=structure)
        self.cfg: SDSNNConfig = config
        # Conv layers before linear ones (the reference's order), model order within each.
        self.layers = [la for la in chosen if la.kind == "conv"]
        self.layers += [la for la in chosen if la.kind != "conv"]
        self.static_clip = self._static_clip_layers(chosen)
        self.rates = {la.name: self._initial_rate(la) for la in self.layers}
        self.history = {la.name: torch.zeros(la.num_units, dtype=torch.bool,
                                             device=la.weight.device) for la in self.layers}
        self.ranges: dict[str, SpineRanges] = {}
        self.regrowth = {la.name: RegrowthTracker(self._candidate_shape(la), la.weight.device,
                                                  self._regrow_count(la))
                         for la in self.layers} if config.regrowth else {}
        self.grad_sums: dict[str, torch.Tensor] = {}
        self.next_epoch = 0  # index of the next step (an epoch, or an N-batch period)
        self.batches = 0
        self.pending: list[dict[str, Any]] = []
        # default mode: per-unit activity over the period (silent units rank last) ...
        self.recorder = ActivityRecorder(model, structure, self.layers, readout="mean",
                                         ann_activity="post") \
            if config.silent_units_first else None
        self.activity: dict[str, torch.Tensor] = {}
        # ... and the gradient a dead unit's synapses would get (regrowth under hard masks)
        self.dead_grad = DeadUnitGradient(model, structure, self.layers) \
            if self.regrowth and self.masks.hard and config.signal == "gradient" else None
        # Reused layer-sized float buffers of the epoch step (not state): a fresh 67 MB
        # temporary costs ~4x a pass over it on the CPU, in page faults.
        self._scratch: dict[tuple[torch.Size, torch.device], torch.Tensor] = {}
        # units the rate selected this step but the per-step cap deferred (not state)
        self._deferred: dict[str, int] = {}

    # -- construction helpers ---------------------------------------------------------------
    def _static_clip_layers(self, chosen: list[PrunableLayer]) -> list[PrunableLayer]:
        names = [la.name for la in self.structure.layers]
        for pattern in self.cfg.static_clip_layers:
            if not fnmatch.filter(names, pattern):
                raise ConfigError(f"prune.sdsnn.static_clip_layers: {pattern!r} matches no "
                                  f"weight layer; layers are {names}")
        pruned = {la.name for la in chosen}
        return [la for la in self.structure.layers if la.name not in pruned and any(
            fnmatch.fnmatchcase(la.name, p) for p in self.cfg.static_clip_layers)]

    def _initial_rate(self, layer: PrunableLayer) -> float:
        return self.cfg.conv_rate if layer.kind == "conv" else self.cfg.fc_rate

    @staticmethod
    def _candidate_shape(layer: PrunableLayer) -> tuple[int, ...]:
        shape = tuple(layer.weight.shape)
        return shape[:2] if layer.kind == "conv" else shape

    def _regrow_count(self, layer: PrunableLayer) -> int:
        return self.cfg.regrow_count_conv if layer.kind == "conv" else self.cfg.regrow_count_fc

    def _pruned_fraction(self, layer: PrunableLayer) -> float:
        for pattern, fraction in self.cfg.pruned_fraction_overrides.items():
            if fnmatch.fnmatchcase(layer.name, pattern):
                return fraction
        return self.cfg.conv_pruned_fraction if layer.kind == "conv" else \
            self.cfg.fc_pruned_fraction

    def _ranges_updated(self, layer: PrunableLayer) -> bool:
        return layer.kind != "conv" or not self.cfg.ranges_fc_only_bug_compat

    # -- per batch: gradient signal for regrowth under hard masks, activity, cadence --------
    def _accumulating(self) -> bool:
        return (bool(self.regrowth) and self.cfg.signal == "gradient"
                and self.cfg.develops_at(self.next_epoch))

    def on_batch_start(self) -> None:
        # The activity only ranks units at a step that prunes (it is dropped at every step):
        # before 2C and after ``end`` nothing is recorded, so it costs nothing there.
        if self.recorder is not None and self.model.training \
                and self.cfg.develops_at(upcoming_step(self.batches, self.cfg.every_batches,
                                                      self.next_epoch)):
            self.recorder.start()
        if self.dead_grad is not None:
            self.dead_grad.active = self._accumulating()
            self.dead_grad.start_batch()

    def on_batch_end(self) -> None:
        if self.recorder is not None:
            for name, (_, post) in self.recorder.finish().items():
                total = post.detach().abs().sum(0).float()
                if name in self.activity:
                    self.activity[name].add_(total)
                else:
                    self.activity[name] = total
        every = self.cfg.every_batches
        if every:
            self.batches += 1
            if self.batches % every == 0:
                self.pending.append(self.step(self.batches // every - 1))

    def detach(self) -> None:
        if self.recorder is not None:
            self.recorder.remove()
        if self.dead_grad is not None:
            self.dead_grad.remove()

    @torch.no_grad()
    def on_after_backward(self) -> None:
        # Before the base class masks the gradients: pruned entries' gradients ARE the signal.
        if self._accumulating():
            for layer in self.layers:
                grad = layer.weight.grad
                if grad is None:
                    continue
                if layer.name in self.grad_sums:
                    self.grad_sums[layer.name].add_(grad)
                else:
                    self.grad_sums[layer.name] = grad.detach().float().clone()
        super().on_after_backward()

    def statistics(self) -> dict[str, torch.Tensor]:
        # Ranges, importance and clipping come from the weights and the regrowth signal from
        # gradients DDP has already averaged, all rank-identical; the activity of the period
        # (silent units) is a sum over each rank's samples.
        return {f"{name}.activity": total for name, total in self.activity.items()}

    # -- the structural step ----------------------------------------------------------------
    def on_epoch_end(self, epoch: int) -> dict[str, Any]:
        if not self.cfg.every_batches:
            return self.step(epoch)
        events, self.pending = self.pending, []
        return summarise_steps(events, self.masks.weight_connectivity() if events else None)

    @structural_step  # data-parallel: masks checked identical on every rank afterwards
    @torch.no_grad()
    def step(self, epoch: int) -> dict[str, Any]:
        """One SD-SNN step at index ``epoch`` (an epoch, or an N-batch period)."""
        self.next_epoch = epoch + 1
        try:
            return self._step(epoch)
        finally:
            self.grad_sums.clear()
            self.activity = {}  # new tensors: the DDP synchroniser restarts its count
            if self.dead_grad is not None:
                self.dead_grad.reset()

    def _step(self, epoch: int) -> dict[str, Any]:
        if not self.ranges:
            self._init_ranges()
            return {"step": epoch, "ranges_initialised": True}
        events: dict[str, Any] = {"step": epoch, "ranges": self._update_ranges()}
        if epoch > self.cfg.clip_start:
            events["clipped"] = self._clip()
        if self.cfg.develops_at(epoch):
            regrown: dict[str, torch.Tensor] = {}
            if self.regrowth:
                events["regrowth"], regrown = self._regrow(epoch)
            events.update(self._prune_and_update_rates(epoch))
            self.commit_masks()
            self._start_regrown(regrown)
            events["connectivity"] = self.masks.weight_connectivity()  # = static_metrics'
            events["mask_connectivity"] = self.masks.connectivity()
            events["regrown"] = sum(events.get("regrowth", {}).get(
                "synapses_regenerated", {}).values())
        return events

    def _init_ranges(self) -> None:
        for layer in [*self.layers, *self.static_clip]:
            self.ranges[layer.name] = SpineRanges(
                layer.weight, self.cfg.count_threshold, self.cfg.shrink_factor)

    def _buffer(self, like: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """A scratch buffer shaped like ``like``, valid until the next request."""
        key = (like.shape, like.device, dtype)
        if key not in self._scratch:
            self._scratch[key] = torch.empty(like.shape, dtype=dtype, device=like.device)
        return self._scratch[key]

    def _masked_weight(self, layer: PrunableLayer) -> torch.Tensor:
        weight = layer.weight.detach()
        if self.masks.hard or layer.name not in self.masks:
            return weight  # hard masks already hold pruned entries at exactly zero
        if weight.dtype != torch.float32:
            return weight * self.masks[layer.name]
        return mul_mask(weight, self.masks[layer.name], out=self._buffer(weight))

    def _update_ranges(self) -> dict[str, dict[str, int]]:
        out = {}
        for layer in self.layers:
            if self._ranges_updated(layer):
                step = self.ranges[layer.name].update(self._masked_weight(layer))
                out[layer.name] = dataclasses.asdict(step)
        return out

    def _clip(self) -> dict[str, int]:
        return {layer.name: self.ranges[layer.name].clip_(layer.weight)
                for layer in [*self.layers, *self.static_clip]}

    # -- regeneration -----------------------------------------------------------------------
    def _regrow(self, epoch: int) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        start = self.cfg.prune_after + 1
        regrown: dict[str, int] = {}
        restored: dict[str, torch.Tensor] = {}
        percentiles: dict[str, float] = {}
        for layer in self.layers:
            conv = layer.kind == "conv"
            p0 = self.cfg.regrow_p0_conv if conv else self.cfg.regrow_p0_fc
            q = regrowth_percentile(epoch, start, p0, self.cfg.regrow_growth, self.cfg.regrow_cap)
            signal = self._regrowth_signal(layer)
            if signal is None:
                continue
            kept = self.masks.kernel_mask(layer.name) if conv else self.masks[layer.name]
            pruned = self._buffer(kept, torch.bool)
            binary("logical_not", array(kept), None, array(pruned))
            restore, _ = self.regrowth[layer.name].step(
                signal, pruned, q, self._regrow_count(layer))
            regrown[layer.name] = 0
            if any_true(restore):
                restore = full_shape(restore, self.masks[layer.name]) & ~self.masks[layer.name]
                restored[layer.name] = restore
                regrown[layer.name] = self.masks.regrow(layer.name, restore)
            percentiles[layer.name] = q
        return {"synapses_regenerated": regrown, "percentile": percentiles}, restored

    def _regrowth_signal(self, layer: PrunableLayer) -> torch.Tensor | None:
        """Per candidate: the weight (reference), |summed gradient| (hard masks), and for the
        rows of dead units ``max(-G, 0)`` of the gradient G through their saved outgoing
        weights: a silent unit gains only from synapses that would excite it (spikes and
        ReLU outputs are >= 0), the hard-mask twin of the reference's signed weight, which
        after plain SGD is ``-lr * G``."""
        conv = layer.kind == "conv"
        if self.cfg.signal != "gradient":
            return candidate_signal(layer.weight.detach(), self.cfg.signal, kernels=conv)
        grads = self.grad_sums.get(layer.name)  # None: no training step this period
        if grads is None:
            return None
        signal = candidate_signal(grads, "gradient", kernels=conv, out=self._buffer(grads))
        virtual = self.dead_grad.sums.get(layer.name) if self.dead_grad else None
        if virtual is not None:
            dead = ~self.masks.unit_alive(layer.name)
            signal[dead] = virtual[dead].neg().clamp_(min=0.0)
            grads[dead] = virtual[dead]  # the start values of regrown entries follow it
        return signal

    def _start_regrown(self, restored: dict[str, torch.Tensor]) -> None:
        """Hard masks: regrown entries start at a typical weight's size, signed by their
        gradient, and a revived unit gets its outgoing weights back (see DeadUnitGradient)."""
        if not self.masks.hard:
            return  # soft masks: restored weights keep their retrained values
        for name, restore in restored.items():
            layer = self.structure[name]
            grads = self.grad_sums.get(name)
            if grads is not None:
                regrown_start_values(layer.weight.data, restore, grads, self.masks[name])
            revived = restore.flatten(1).any(1)
            if self.dead_grad is not None:
                self.dead_grad.restore(name, revived, self.structure)

    # -- neuronal pruning and neurotrophic rates --------------------------------------------
    def _prune_and_update_rates(self, epoch: int) -> dict[str, Any]:
        start = self.cfg.prune_after + 1
        newly: dict[str, int] = {}
        counted: dict[str, int] = {}
        # Kept entries per unit, counted once per layer and epoch (the FC layer's 16.8M-entry
        # count is needed by the last conv's rule and by its own): pruning a unit zeroes it.
        kept: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.layers):
            chosen = self._select_units(layer)
            # (no unit chosen: no mask edit, which would drop every cached derived mask)
            newly[layer.name] = self.masks.prune_units(layer.name, chosen) \
                if any_true(chosen) else 0
            if layer.name in kept:
                kept[layer.name].masked_fill_(chosen, 0)
            # Units the cap deferred count as pruned for the rate rules: the cap spreads the
            # removal over steps, it must not raise the rate trajectory.
            counted[layer.name] = self._count_pruned(layer, kept) + \
                self._deferred.get(layer.name, 0)
            if layer.kind == "conv":
                nxt = self._next_layer(i)
                alive = layer.num_units - counted[layer.name]
                alive_next = nxt.num_units - self._count_pruned(
                    nxt, kept, self._next_fraction(nxt)) if nxt else alive
                self.rates[layer.name] = conv_rate_step(
                    self.rates[layer.name], epoch, start, alive, alive_next, self.cfg)
            else:
                self.rates[layer.name] = fc_rate_step(
                    self.rates[layer.name], epoch, start, layer.num_units,
                    counted[layer.name], self.cfg)
        return {"neurons_pruned": newly, "units_counted_pruned": counted,
                "rates": dict(self.rates)}

    def _importance_mask(self, layer: PrunableLayer) -> torch.Tensor:
        # Hard mode: columns fed only by dead units carry nothing, so they add no importance.
        return self.masks.effective_mask(layer.name) if self.masks.hard \
            else self.masks[layer.name]

    def _select_units(self, layer: PrunableLayer) -> torch.Tensor:
        """Bool vector of the units to prune now: the bottom-k by range-width importance,
        minus the history set (which they join)."""
        # range_width_importance_per_unit, with the mask applied inside the blocked pass
        width = self.ranges[layer.name].width_importance(out=self._buffer(layer.weight),
                                                         mask=self._importance_mask(layer))
        importance = width.flatten(1).sum(1)
        silent = self._silent_units(layer)
        if silent is not None:
            importance = silent_last(importance, silent)
        chosen = bottom_units(importance, self.rates[layer.name])
        history = self.history[layer.name]
        if layer.kind != "conv" or self.cfg.conv_history:
            chosen &= ~history  # a neuron in the history set is never newly pruned again
        if self.cfg.step_cap < 1:
            cap = max(1, int(self.cfg.step_cap * layer.num_units))
            selected = chosen & self.masks.unit_alive(layer.name)
            chosen = cap_selection(selected, importance, cap)
            self._deferred[layer.name] = int(selected.sum()) - int(chosen.sum())
        history |= chosen
        if self.dead_grad is not None:
            self.dead_grad.save(layer.name, chosen, self.structure)
        return chosen

    def _silent_units(self, layer: PrunableLayer) -> torch.Tensor | None:
        """Units that carried no signal over the period (None: nothing was recorded)."""
        total = self.activity.get(layer.name)
        return None if total is None else total <= 0

    def _prune_layer(self, layer: PrunableLayer) -> int:
        return self.masks.prune_units(layer.name, self._select_units(layer))

    def _next_fraction(self, layer: PrunableLayer) -> float | None:
        for pattern, fraction in self.cfg.next_pruned_fraction_overrides.items():
            if fnmatch.fnmatchcase(layer.name, pattern):
                return fraction
        return None

    def _count_pruned(self, layer: PrunableLayer, kept: dict[str, torch.Tensor],
                      fraction: float | None = None) -> int:
        """Units with fewer than ``fraction * fan-in`` kept incoming entries (``fraction``:
        the layer's own when None)."""
        if layer.name not in self.masks:
            return 0  # an unpruned consumer (e.g. the output layer) has lost nothing
        mask = self.masks[layer.name]
        if layer.name not in kept:
            kept[layer.name] = row_counts(mask)
        if fraction is None:
            fraction = self._pruned_fraction(layer)
        limit = pruned_entry_limit(fraction, mask[0].numel())
        return int((kept[layer.name] < limit).sum())

    def _next_layer(self, index: int) -> PrunableLayer | None:
        """The layer whose surviving units feed layer ``index``'s rate: the next pruned
        layer (the last conv's is the first linear one), else a direct consumer."""
        if index + 1 < len(self.layers):
            return self.layers[index + 1]
        consumers = self.structure.consumers(self.layers[index].name)
        return consumers[0][0] if consumers else None

    # -- in-training compaction (docs/COMPACT.md#sdsnn-compaction) --------------------------
    def compaction_refusal(self) -> str | None:
        if self.cfg.mode == "reference":
            return ("reference mode masks softly (pruned weights retrain until the epoch "
                    "end), so removing a pruned unit changes the run; use prune.mode=default")
        if self.cfg.end is None:
            return ("without prune.sdsnn.end it prunes and regrows to the last step, so no "
                    "unit is ever dead for good; set prune.sdsnn.end (the model shrinks "
                    "after that step)")
        return self.recurrent_refusal("prune.sdsnn.exclude")

    def removal_is_final(self) -> bool:
        """After the step ``end`` nothing is pruned, revived or counted any more: ranges and
        clipping alone go on, entry by entry, and a dead unit's entries are zero."""
        return self.cfg.end is not None and self.next_epoch > self.cfg.end

    @torch.no_grad()
    def shrink(self, keep: Any) -> bool:
        """Slice the ranges, history and masks to the kept rows and columns. Regrowth state
        is dropped: only a step up to ``end`` reads it, and only a step after ``end``
        shrinks (resume re-applies the shrink before loading the state it saved)."""
        if self.compaction_refusal() is not None:
            return False
        for name, ranges in self.ranges.items():
            ranges.shrink_(keep.keep_out[name], keep.keep_in[name])
        for name, history in self.history.items():
            self.history[name] = history[keep.keep_out[name].to(history.device)]
        self.regrowth = {}
        if self.dead_grad is not None:
            self.dead_grad.remove()
            self.dead_grad = None
        self.masks.shrink_(keep)
        self._scratch.clear()
        return True

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            next_epoch=self.next_epoch,
            batches=self.batches,
            activity={k: v.cpu().clone() for k, v in self.activity.items()},
            dead_unit_columns=self.dead_grad.state_dict() if self.dead_grad else {},
            rates=dict(self.rates),
            history={k: v.cpu().clone() for k, v in self.history.items()},
            ranges={k: r.state_dict() for k, r in self.ranges.items()},
            regrowth={k: t.state_dict() for k, t in self.regrowth.items()},
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if set(state["rates"]) != set(self.rates):
            raise CheckpointError(
                f"checkpoint SD-SNN state covers layers {sorted(state['rates'])} but this run "
                f"prunes {sorted(self.rates)}; use the same model and prune.sdsnn.include")
        self.next_epoch = int(state["next_epoch"])
        self.batches = int(state.get("batches", 0))
        self.activity = {k: v.clone() for k, v in state.get("activity", {}).items()}
        self.rates = {k: float(v) for k, v in state["rates"].items()}
        for name, saved in state["history"].items():
            self.history[name] = saved.to(self.history[name].device, torch.bool)
        try:
            self._load_ranges_and_regrowth(state)
        except (KeyError, ValueError) as err:
            raise CheckpointError(f"checkpoint SD-SNN state does not fit this model: {err}") \
                from err
        self.grad_sums.clear()

    def _load_ranges_and_regrowth(self, state: dict[str, Any]) -> None:
        self.ranges = {}
        if state["ranges"]:
            self._init_ranges()
            for name, ranges in self.ranges.items():
                ranges.load_state_dict(state["ranges"][name])
        for name, tracker in self.regrowth.items():
            tracker.load_state_dict(state["regrowth"][name])
        if self.dead_grad is not None and state.get("dead_unit_columns"):
            self.dead_grad.load_state_dict(state["dead_unit_columns"])


def summarise_steps(events: list[dict[str, Any]], connectivity: float | None
                    ) -> dict[str, Any]:
    """One epoch's record of several N-batch steps: per-layer counts summed over the steps,
    the last rates, the connectivity now, and each step's own events under ``steps``."""
    if not events:
        return {}
    out: dict[str, Any] = {"steps": events}
    for key in ("neurons_pruned",):
        out[key] = _sum_layers(e.get(key, {}) for e in events)
    regrowth = [e["regrowth"]["synapses_regenerated"] for e in events if "regrowth" in e]
    if regrowth:
        out["regrowth"] = {"synapses_regenerated": _sum_layers(regrowth)}
        out["regrown"] = sum(e.get("regrown", 0) for e in events)
    for key in ("rates", "units_counted_pruned", "mask_connectivity"):
        last = [e[key] for e in events if key in e]
        if last:
            out[key] = last[-1]
    if connectivity is not None and any("connectivity" in e for e in events):
        out["connectivity"] = connectivity
    return out


def _sum_layers(dicts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for d in dicts:
        for name, value in d.items():
            total[name] = total.get(name, 0) + int(value)
    return total


register_pruner("sdsnn", SDSNNPruner, SDSNNConfig,
                "SD-SNN: dendritic-spine ranges, neurotrophic rates, synaptic regeneration")
