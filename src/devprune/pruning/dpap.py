"""DPAP: developmental plasticity-inspired adaptive pruning (Han et al., TPAMI 2024).

docs/DPAP.md is the specification and lists every deviation (docs/DPAP.md#dpap-deviations). Per
training batch, for every chosen layer, the pre- and postsynaptic trace readouts feed a BCM
accumulator ``M`` (``[out, in]``: channels for convolutions, features for linear layers), a
cumulative activity ``A`` and the sliding threshold ``theta``. At every pruning step ``e`` (an
epoch, or every ``every_batches`` batches) each unit (filter / neuron, or a residual group of
channels) and each synapse (linear weight, or conv kernel slice) updates its reserve ``P <-
gamma * P + d(u) * g(e)`` from its robustly normalised importance ``u`` and is removed, for
good, once ``P < 0``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from devprune.compact.live import LiveMaskSet, shrink_with_removed
from devprune.errors import CheckpointError, ConfigError
from devprune.pruning.activity import ActivityRecorder
from devprune.pruning.base import register_pruner, structural_step
from devprune.pruning.importance import (
    developmental_factor,
    minmax_normalise,
    negative,
    reserve_update,
    reserve_update_,
    robust_normalise,
    running_mean_per_slot,
    spine_importance,
)
from devprune.pruning.masked import MaskedPruner, select_layers
from devprune.pruning.schedules import settling_cadence, upcoming_step
from devprune.pruning.temporal import TimeStepReserve
from devprune.structure import ModelStructure, PrunableLayer, discover


@dataclass
class DPAPConfig:
    """``prune.dpap``: every constant of docs/DPAP.md#dpap-variants (defaults: the BrainCog
    CIFAR-10 SNN).

    Attributes:
        mode: ``default`` (hard masks; normalisation over surviving units) or ``reference``
            (the authors' soft epoch-end masking, normalisation over all units). Set once, in
            ``prune.mode``.
        include: glob patterns of layer names to prune (empty = every layer but the output).
        exclude: glob patterns of layer names never pruned.
        include_output: also prune the output layer (never in the reference).
        conv_granularity: ``filter`` (whole output channels, BC/VGG) or ``kernel`` (one
            ``[out, in]`` kernel slice, DR N-MNIST / DVS-Gesture).
        linear_granularity: ``neuron+synapse`` (BC), ``synapse`` (DR N-MNIST / DVS) or
            ``neuron``.
        residual: channels tied by a residual add are pruned as one ``group`` (importance =
            mean over the members' spine scores) or not at all (``exclude``).
        trace_decay: ``delta`` of the trace ``x[t] = delta x[t-1] + o[t]``.
        readout: ``last`` (``x[T] / T``, the reference) or ``mean`` (time-average of x).
        theta: BCM threshold as a running mean ``per_unit`` over every sample seen, or
            ``per_slot`` (one per batch position, the reference's quirk).
        accumulation: ``cumulative`` (M and A over all training, BC/ANN) or ``per_step``
            (M and A restart after each pruning step, DR small SNNs); theta never restarts.
        ann_activity: for ANN layers, the activity is the layer's own output (``pre``
            activation, the reference) or the activation module's output (``post``).
        cadence: ``manual`` (the four keys below as given) or ``fit``: ``every_batches``,
            ``start``, ``e0`` and ``end`` chosen from the run's length so the structure
            settles before the last epoch (docs/DPAP.md#dpap-run-length).
        every_batches: 0 = one pruning step per epoch (reference); N > 0 = one step every N
            training batches (then ``start``, ``e0`` and the ``*_kappa`` count steps).
        start: first step index ``e`` (epoch, or completed N-batch period, 0-based) that
            prunes; BC prunes after epoch 5 (``epoch > 4``).
        end: the last step that prunes (None = no end, the reference: g(e) fades pruning
            out by itself); ``for_run`` sets it to the last step before the last epoch.
        e0: onset of the developmental factor ``g(e) = exp(-int((e - e0) / kappa))``.
        gamma: reserve retention per step.
        low_percentile / high_percentile: the robust normalisation range ``(P_low, P_high)``
            (0 = minimum): 0/75 (BC, ANN), 0.1/99.9 (DR MNIST), 5/80 (DR N-MNIST, DVS).
        normalise_over: population setting the normalisation scale: ``alive`` units and
            synapses, ``all`` (reference), or ``auto`` (alive in default mode, all in
            reference mode).
        conv_offset / conv_bonus / conv_reserve / conv_kappa: ``c``, ``beta``, ``P0``,
            ``kappa`` of conv filters or kernels.
        fc_neuron_*: the same for linear neurons; fc_synapse_*: for linear synapses.
        temporal: also learn to simulate fewer time steps (devprune's extension, off in the
            reference; devprune.pruning.temporal): a reserve over the last step's share of
            the loss reduction shortens the model's ``time_steps`` one step at a time.
        min_time_steps: the time side never goes below this many steps.
        time_offset / time_bonus / time_reserve / time_kappa: ``c``, ``beta``, ``P0``,
            ``kappa`` of the time-step reserve (its ``u`` is the last step's loss gain over
            the mean gain per step: 1 = an average step, 0 = useless).
    """

    mode: Literal["default", "reference"] = "default"
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    include_output: bool = False
    conv_granularity: Literal["filter", "kernel"] = "filter"
    linear_granularity: Literal["neuron+synapse", "synapse", "neuron"] = "neuron+synapse"
    residual: Literal["group", "exclude"] = "group"
    trace_decay: float = 0.5
    readout: Literal["last", "mean"] = "last"
    theta: Literal["per_unit", "per_slot"] = "per_unit"
    accumulation: Literal["cumulative", "per_step"] = "cumulative"
    ann_activity: Literal["pre", "post"] = "pre"
    cadence: Literal["manual", "fit"] = "manual"
    every_batches: int = 0
    start: int = 5
    end: int | None = None
    e0: int = 5
    gamma: float = 0.999
    low_percentile: float = 0.0
    high_percentile: float = 75.0
    normalise_over: Literal["auto", "alive", "all"] = "auto"
    conv_offset: float = 0.65
    conv_bonus: float = 5.0
    conv_reserve: float = 10.0
    conv_kappa: float = 12.0
    fc_neuron_offset: float = 1.5
    fc_neuron_bonus: float = 2.0
    fc_neuron_reserve: float = 10.0
    fc_neuron_kappa: float = 13.0
    fc_synapse_offset: float = 1.5
    fc_synapse_bonus: float = 2.0
    fc_synapse_reserve: float = 10.0
    fc_synapse_kappa: float = 13.0
    temporal: bool = False
    min_time_steps: int = 1
    time_offset: float = 0.2
    time_bonus: float = 0.0
    time_reserve: float = 1.0
    time_kappa: float = 13.0

    def __post_init__(self) -> None:
        choices = {
            "mode": ("default", "reference"), "conv_granularity": ("filter", "kernel"),
            "linear_granularity": ("neuron+synapse", "synapse", "neuron"),
            "residual": ("group", "exclude"), "readout": ("last", "mean"),
            "theta": ("per_unit", "per_slot"), "accumulation": ("cumulative", "per_step"),
            "ann_activity": ("pre", "post"), "normalise_over": ("auto", "alive", "all"),
            "cadence": ("manual", "fit"),
        }
        for name, allowed in choices.items():
            _require(getattr(self, name) in allowed, name, f"must be one of {list(allowed)}")
        _require(0 < self.trace_decay <= 1, "trace_decay", "must be in (0, 1], e.g. 0.5")
        _require(self.every_batches >= 0, "every_batches", "must be >= 0 (0 = every epoch)")
        _require(self.end is None or self.end >= self.start, "end",
                 f"must be a step index >= start ({self.start}), or null for no end")
        _require(0 < self.gamma <= 1, "gamma", "must be in (0, 1], e.g. 0.999")
        _require(0 <= self.low_percentile < self.high_percentile <= 100, "low_percentile",
                 "need 0 <= low_percentile < high_percentile <= 100 (e.g. 0 and 75)")
        _require(self.min_time_steps >= 1, "min_time_steps", "must be >= 1")
        for kind in ("conv", "fc_neuron", "fc_synapse", "time"):
            _require(getattr(self, f"{kind}_kappa") > 0, f"{kind}_kappa", "must be positive")
            _require(getattr(self, f"{kind}_reserve") >= 0, f"{kind}_reserve", "must be >= 0")

    def constants(self, kind: str) -> ReserveConstants:
        """The reserve constants of ``conv``, ``fc_neuron``, ``fc_synapse`` units or ``time``."""
        return ReserveConstants(*(float(getattr(self, f"{kind}_{k}")) for k in
                                  ("offset", "bonus", "reserve", "kappa")))

    @classmethod
    def for_run(cls, epochs: int, batches_per_epoch: int, **settings: Any) -> DPAPConfig:
        """Settings for a run of ``epochs`` x ``batches_per_epoch`` training batches: the
        defaults (or ``settings``) with a step cadence under which the structure settles
        before the last epoch (docs/DPAP.md#dpap-run-length). Cadence keys given in
        ``settings`` (``every_batches``, ``start``, ``e0``, ``end``) win over the fitted ones
        (a given ``every_batches`` also sets the onset and the end).

        A run too short for per-epoch steps has one epoch, not hundreds, to recover from
        what it prunes: the linear reserves not given are raised to ``SHORT_RUN_RESERVE``
        (measured: an MLP on MNIST, 3 epochs, lost 1.8 points at 18% kept with P0 = 10 and 0.7
        at 40% with 15). Conv reserves keep P0 = 10: their offset c = 0.65 drives them less
        than the linear 1.5, and at 15 two CSNNs and a ResNet kept every filter
        (docs/DPAP.md#dpap-run-length)."""
        config = cls(**{"cadence": "fit", **settings})
        config = config.fit_to_run(epochs, batches_per_epoch, keep=tuple(settings))
        if config.every_batches == 0:
            return config
        raised = {f"{kind}_reserve": SHORT_RUN_RESERVE for kind in ("fc_neuron", "fc_synapse")
                  if f"{kind}_reserve" not in settings}
        return dataclasses.replace(config, **raised)

    def fit_to_run(self, epochs: int, batches_per_epoch: int,
                   keep: tuple[str, ...] = ()) -> DPAPConfig:
        """With ``cadence: fit``, these settings with ``every_batches``, ``start``, ``e0``
        and ``end`` chosen for the run (all but the ``keep`` ones); else unchanged."""
        if self.cadence != "fit":
            return self
        if not keep:
            given = [key for key in CADENCE_KEYS if getattr(self, key) != _DEFAULTS[key]]
            _require(not given, "cadence", f"'fit' chooses {list(CADENCE_KEYS)} from the run; "
                     f"remove {given} or set cadence: manual")
        kappa = max(self.conv_kappa, self.fc_neuron_kappa, self.fc_synapse_kappa)
        cadence = settling_cadence(
            epochs, batches_per_epoch, kappa,
            every_batches=self.every_batches if "every_batches" in keep else None)
        fitted = {key: value for key, value in dataclasses.asdict(cadence).items()
                  if key not in keep}
        return dataclasses.replace(self, **fitted)

    @property
    def alive_only(self) -> bool:
        if self.normalise_over == "auto":
            return self.mode == "default"
        return self.normalise_over == "alive"


CADENCE_KEYS = ("every_batches", "start", "e0", "end")
SHORT_RUN_RESERVE = 15.0  # linear P0 for runs stepping every N batches (DPAPConfig.for_run)
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(DPAPConfig)}


def _require(ok: bool, name: str, what: str) -> None:
    if not ok:
        raise ConfigError(f"prune.dpap.{name}: {what}")


@dataclass
class ReserveConstants:
    offset: float
    bonus: float
    reserve: float
    kappa: float


# --------------------------------------------------------------------------------------------
# Per-layer statistics
# --------------------------------------------------------------------------------------------
# Up to this share of a layer's units active in a batch, the BCM update multiplies their rows
# only; above it the full product is faster (measured on the quick MLP's [800, 784] layer:
# 0.45 of the full product's time at 30% active, 0.92 at 70%, 1.13 at 80%).
SPARSE_ROWS_SHARE = 0.7


def accumulate_hebbian(bcm: torch.Tensor, hebb: torch.Tensor, pre: torch.Tensor) -> None:
    """``M += hebb^T @ pre`` (``hebb`` ``[B, out]``, ``pre`` ``[B, in]``, ``M`` ``[out, in]``).

    A unit silent for the whole batch (``a = 0``, so ``a (a - theta) = 0``) has a zero column
    in ``hebb`` and adds exact zeros to its row of ``M``. With at most
    :data:`SPARSE_ROWS_SHARE` of the units active, only their rows are multiplied and added
    (``index_add_``): the same products and sums, on this build the same bits as the full
    product (tested). On the quick MLP preset that is the second half of development, once
    pruning has silenced most units (~250 of 800 active: 0.83 against 1.5 ms per batch);
    while most units fire, and off the CPU (``nonzero`` would wait for the device), one
    ``addmm_`` with no ``[out, in]`` temporary (67 MB per batch for the reference FC layer).
    """
    if bcm.device.type == "cpu":
        active = hebb.ne(0).any(0).nonzero().squeeze(1)
        if active.numel() <= SPARSE_ROWS_SHARE * hebb.shape[1]:
            bcm.index_add_(0, active, torch.mm(hebb.index_select(1, active).T, pre))
            return
    bcm.addmm_(hebb.T, pre)


class LayerStatistics:
    """BCM matrix ``M``, cumulative activity ``A`` and threshold ``theta`` of one layer.

    ``M`` and ``A`` are sums over all samples since training started, so a data-parallel run
    can all-reduce them (devprune.distributed); the ``per_step`` window is the difference to
    a snapshot taken at the last pruning step.
    """

    def __init__(self, out_units: int, in_units: int, theta_mode: str, windowed: bool,
                 device: torch.device) -> None:
        self.theta_mode = theta_mode
        self.windowed = windowed
        self.bcm = torch.zeros(out_units, in_units, device=device)
        self.activity = torch.zeros(out_units, device=device)
        self.theta_sum = torch.zeros(out_units, device=device)
        self.theta_count = torch.zeros((), device=device)
        self.slot_theta = torch.zeros(0, out_units, device=device)
        self.slot_count = torch.zeros(0, device=device)
        self.bcm_mark = torch.zeros_like(self.bcm) if windowed else None
        self.activity_mark = torch.zeros_like(self.activity) if windowed else None

    def threshold(self, batch: int) -> torch.Tensor:
        """theta(k-1), the threshold the current batch is compared with."""
        if self.theta_mode == "per_unit":
            return self.theta_sum / self.theta_count.clamp(min=1)
        self._ensure_slots(batch)
        return self.slot_theta[:batch]

    def _ensure_slots(self, batch: int) -> None:
        missing = batch - self.slot_theta.shape[0]
        if missing > 0:
            pad = self.slot_theta.new_zeros(missing, self.slot_theta.shape[1])
            self.slot_theta = torch.cat([self.slot_theta, pad])
            self.slot_count = torch.cat([self.slot_count, self.slot_count.new_zeros(missing)])

    @torch.no_grad()
    def update(self, pre: torch.Tensor, post: torch.Tensor) -> None:
        """One batch: ``M += Hebb``, ``A += sum_b a``, then the threshold moves."""
        pre = pre.to(self.bcm.dtype)
        post = post.to(self.bcm.dtype)
        hebb = post * (post - self.threshold(post.shape[0]))
        accumulate_hebbian(self.bcm, hebb, pre)
        column_sum = post.sum(0)
        self.activity.add_(column_sum)
        if self.theta_mode == "per_unit":
            self.theta_sum.add_(column_sum)
            self.theta_count.add_(post.shape[0])
        else:
            self.slot_theta, self.slot_count = running_mean_per_slot(
                self.slot_theta, self.slot_count, post
            )

    def window(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, A) over the accumulation window."""
        if not self.windowed:
            return self.bcm, self.activity
        return self.bcm - self.bcm_mark, self.activity - self.activity_mark

    def restart_window(self) -> None:
        if self.windowed:
            self.bcm_mark.copy_(self.bcm)
            self.activity_mark.copy_(self.activity)

    def tensors(self) -> dict[str, torch.Tensor]:
        state = {"bcm": self.bcm, "activity": self.activity, "theta_sum": self.theta_sum,
                 "theta_count": self.theta_count, "slot_theta": self.slot_theta,
                 "slot_count": self.slot_count}
        if self.windowed:
            state.update(bcm_mark=self.bcm_mark, activity_mark=self.activity_mark)
        return state


# --------------------------------------------------------------------------------------------
# Pruning units: filters / neurons (possibly a residual group) and synapses / kernels
# --------------------------------------------------------------------------------------------
@dataclass
class UnitGroup:
    """Output units pruned together: one layer's, or a residual group's tied channels."""

    key: str
    members: list[str]
    kind: str  # "conv" or "fc_neuron"


def _unit_groups(structure: ModelStructure, layers: list[PrunableLayer],
                 cfg: DPAPConfig) -> tuple[list[UnitGroup], list[str]]:
    """Unit groups to prune, and the layers left out of unit pruning (with the reason)."""
    chosen = {la.name for la in layers}
    groups: list[UnitGroup] = []
    skipped: list[str] = []
    seen_groups: set[int] = set()
    for layer in layers:
        kind = "conv" if layer.kind == "conv" else "fc_neuron"
        if kind == "conv" and cfg.conv_granularity != "filter":
            continue
        if kind == "fc_neuron" and cfg.linear_granularity == "synapse":
            continue
        gid = layer.residual_group
        if gid is None:
            groups.append(UnitGroup(layer.name, [layer.name], kind))
            continue
        members = structure.residual_groups[gid]
        usable = (cfg.residual == "group" and gid not in structure.fixed_groups
                  and all(m in chosen for m in members))
        if not usable:
            skipped.append(layer.name)
        elif gid not in seen_groups:
            seen_groups.add(gid)
            groups.append(UnitGroup(f"residual{gid}", list(members), kind))
    return groups, skipped


def _synapse_layers(layers: list[PrunableLayer], cfg: DPAPConfig) -> list[str]:
    names = []
    for layer in layers:
        if layer.kind == "conv" and cfg.conv_granularity == "kernel":
            if layer.module.groups != 1:
                raise ConfigError(
                    f"prune.dpap.conv_granularity: kernel pruning needs ordinary convolutions "
                    f"but {layer.name!r} has groups={layer.module.groups}; exclude it "
                    "(prune.dpap.exclude) or use filter granularity"
                )
            names.append(layer.name)
        if layer.kind == "linear" and cfg.linear_granularity != "neuron":
            names.append(layer.name)
    return names


# --------------------------------------------------------------------------------------------
# The pruner
# --------------------------------------------------------------------------------------------
class DPAPPruner(MaskedPruner):
    """DPAP driven through the Pruner hooks (see devprune.pruning.base)."""

    name = "dpap"
    mask_set = LiveMaskSet

    def __init__(self, model: nn.Module, example_input: Any = None,
                 config: DPAPConfig | None = None) -> None:
        cfg = config or DPAPConfig()
        structure = discover(model, example_input)
        layers = select_layers(structure, cfg.include, cfg.exclude, cfg.include_output)
        super().__init__(model, example_input, cfg, mode=cfg.mode, layers=layers,
                         structure=structure)
        self.cfg = cfg
        self.layers = layers
        self.unit_groups, self.ungrouped = _unit_groups(structure, layers, cfg)
        self.synapse_layers = _synapse_layers(layers, cfg)
        device = next(iter(model.parameters())).device
        self.stats = {
            la.name: LayerStatistics(la.num_units, la.fan_in, cfg.theta,
                                     cfg.accumulation == "per_step", device)
            for la in layers
        }
        self.unit_reserve = {
            g.key: torch.full((structure[g.members[0]].num_units,), cfg.constants(g.kind).reserve,
                              device=device)
            for g in self.unit_groups
        }
        self.synapse_reserve = {
            name: torch.full(self._synapse_shape(name), self._synapse_constants(name).reserve,
                             device=device)
            for name in self.synapse_layers
        }
        self.recorder = ActivityRecorder(model, structure, layers, delta=cfg.trace_decay,
                                         readout=cfg.readout, ann_activity=cfg.ann_activity)
        self.temporal = self._time_reserve(model, structure) if cfg.temporal else None
        self.batches = 0
        self.next_step = 0  # index of the next pruning step (epoch mode: the next epoch)
        self._unrecorded = False  # this training batch skips the bookkeeping (see developing)
        self.steps_done = 0  # pruning steps that actually pruned (e >= start)
        self.pending_events: list[dict[str, Any]] = []
        self.synapses_removed = dict.fromkeys(self.masks.names(), 0)  # mask entries, so far
        self._scratch: dict[tuple, torch.Tensor] = {}
        # In-training compaction (shrink): the architecture's own sizes, for the summaries;
        # per layer the (row sum of M, A) of units removed physically, which the min-max of
        # spine_importance still spans on the masked model (frozen since they died); and per
        # layer the window of M in the input columns removed physically ([kept rows, removed
        # columns], in the masks' removed order): their input is zero since their units
        # died, so they are constants, still part of the row sums and of the synapse
        # percentiles (their reserves and masks live on: synapse_reserve, masks.removed).
        self.full_units = {la.name: la.num_units for la in layers}
        self.ghosts: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.removed_bcm: dict[str, torch.Tensor] = {}

    # -- helpers ----------------------------------------------------------------------------
    def _time_reserve(self, model: nn.Module, structure: ModelStructure) -> TimeStepReserve:
        const = self.cfg.constants("time")
        return TimeStepReserve(model, structure, offset=const.offset, bonus=const.bonus,
                               reserve=const.reserve, min_time_steps=self.cfg.min_time_steps)

    def _synapse_shape(self, name: str) -> tuple[int, int]:
        return tuple(self.stats[name].bcm.shape)

    def _synapse_constants(self, name: str) -> ReserveConstants:
        kind = "conv" if self.structure[name].kind == "conv" else "fc_synapse"
        return self.cfg.constants(kind)

    @property
    def _empty_range(self) -> str:
        # reference: the authors' unit() gives 0.5 to every entry of an empty range
        return "half" if self.cfg.mode == "reference" else "sign"

    def _synapse_scratch(self, shape: torch.Size, like: torch.Tensor,
                         use: str = "u") -> torch.Tensor:
        """A reused float buffer (not state) for a synapse layer's ``u`` or, after a shrink
        removed input columns, its values: a fresh layer-sized temporary costs ~4x a pass
        over it on the CPU, in page faults."""
        key = (use, tuple(shape), like.dtype, like.device)
        if key not in self._scratch:
            self._scratch[key] = like.new_empty(shape)
        return self._scratch[key]

    def _synapse_alive(self, name: str) -> torch.Tensor:
        alive = self.masks.kernel_mask(name)
        if name not in self.removed_bcm:
            return alive
        return torch.cat([alive, self.masks.removed_kernel_mask(name)], 1)

    def _synapse_values(self, name: str) -> torch.Tensor:
        """The window of M over the layer's synapses: after a shrink that removed input
        columns, their constant values follow the kept columns (synapse_reserve's layout)."""
        bcm, _ = self.stats[name].window()
        removed = self.removed_bcm.get(name)
        if removed is None:
            return bcm
        shape = torch.Size((bcm.shape[0], bcm.shape[1] + removed.shape[1]))
        return torch.cat([bcm, removed], 1, out=self._synapse_scratch(shape, bcm, "values"))

    def _row_sums(self, name: str, bcm: torch.Tensor) -> torch.Tensor:
        """sum_j M_ij over all input columns, those removed physically included."""
        removed = self.removed_bcm.get(name)
        return bcm.sum(1) if removed is None else bcm.sum(1) + removed.sum(1)

    def _group_alive(self, group: UnitGroup) -> torch.Tensor:
        alive = self.masks.unit_alive(group.members[0])
        for member in group.members[1:]:
            alive = alive | self.masks.unit_alive(member)
        return alive

    # -- hooks ------------------------------------------------------------------------------
    def developing(self) -> bool:
        """Whether a pruning step is still to come: False once ``end`` has passed, when the
        statistics (and the time side's evidence), which only feed future steps, are no
        longer recorded: the per-batch bookkeeping then costs nothing."""
        if self.cfg.end is None:
            return True
        return upcoming_step(self.batches, self.cfg.every_batches, self.next_step) \
            <= self.cfg.end

    def on_batch_start(self) -> None:
        self._unrecorded = False
        if self.model.training:
            if not self.developing():
                self._unrecorded = True  # still counted as a training batch
                return
            self.recorder.start()
            if self.temporal is not None:
                self.temporal.start()

    def on_forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        if self.temporal is not None:
            self.temporal.observe(targets)

    def on_batch_end(self) -> None:
        recorded = self.recorder.finish()
        unrecorded, self._unrecorded = self._unrecorded, False
        if not recorded and not unrecorded:
            return
        for name, (pre, post) in recorded.items():
            self.stats[name].update(pre, post)
        if recorded and self.cfg.theta == "per_unit":  # the next batch reads theta: sum it
            self.synchronise([f"{n}.theta_{k}" for n in self.stats for k in ("sum", "count")])
        self.batches += 1
        every = self.cfg.every_batches
        if every and self.batches % every == 0:
            self.pending_events.append(self.prune_step(self.batches // every - 1))

    def on_epoch_end(self, epoch: int) -> dict[str, Any]:
        if not self.cfg.every_batches:
            self.pending_events.append(self.prune_step(epoch))
        events, self.pending_events = self.pending_events, []
        return self._summarise(events)

    def detach(self) -> None:
        self.recorder.remove()
        if self.temporal is not None:
            self.temporal.remove()

    # -- the structural step ----------------------------------------------------------------
    @structural_step  # data-parallel: statistics summed over ranks first (docs/DISTRIBUTED.md)
    @torch.no_grad()
    def prune_step(self, step: int) -> dict[str, Any]:
        """One DPAP step at index ``step`` (epoch or N-batch period); returns its events."""
        self.next_step = step + 1
        if step < self.cfg.start or (self.cfg.end is not None and step > self.cfg.end):
            return {"step": step, "pruned": False}
        factors = {kind: developmental_factor(step, self.cfg.e0, self.cfg.constants(kind).kappa)
                   for kind in ("conv", "fc_neuron", "fc_synapse")}
        removed = {la.name: {"units": 0, "weights": 0} for la in self.layers}
        for name in self.synapse_layers:
            removed[name]["weights"] += self._prune_synapses(name, factors)
        for group in self.unit_groups:
            for member, (units, weights) in self._prune_units(group, factors).items():
                removed[member]["units"] += units
                removed[member]["weights"] += weights
        if self.masks.any_pruned():
            self.commit_masks()
        for stats in self.stats.values():
            stats.restart_window()
        self.steps_done += 1
        event = {"step": step, "pruned": True, "factor": factors, "removed": removed}
        if self.temporal is not None:
            factor = developmental_factor(step, self.cfg.e0, self.cfg.time_kappa)
            event["time"] = self.temporal.step(factor, self.cfg.gamma)
        return event

    def _prune_synapses(self, name: str, factors: dict[str, float]) -> int:
        const = self._synapse_constants(name)
        kind = "conv" if self.structure[name].kind == "conv" else "fc_synapse"
        # selecting the alive entries costs a pass over the layer: skip it while none died
        population = (self._synapse_alive(name)
                      if self.cfg.alive_only and self.synapses_removed[name] else None)
        values = self._synapse_values(name)
        u = robust_normalise(values, self.cfg.low_percentile, self.cfg.high_percentile,
                             population, out=self._synapse_scratch(values.shape, values),
                             empty_range=self._empty_range)
        reserve = reserve_update_(self.synapse_reserve[name], u, offset=const.offset,
                                  bonus=const.bonus, factor=factors[kind], gamma=self.cfg.gamma)
        # dead entries need no "& alive": the mask edit removes only kept entries
        dying = negative(reserve, out=self._synapse_scratch(reserve.shape, self.masks[name],
                                                            "dying"))
        kept = self.masks[name].shape[1]
        removed = self.masks.prune_synapses(name, dying[:, :kept])
        if name in self.removed_bcm:
            removed += self.masks.prune_removed(name, dying[:, kept:])
        self.synapses_removed[name] += removed
        return removed

    def _prune_units(self, group: UnitGroup,
                     factors: dict[str, float]) -> dict[str, tuple[int, int]]:
        const = self.cfg.constants(group.kind)
        scores = []
        for member in group.members:
            bcm, activity = self.stats[member].window()
            scores.append(self._spine_importance(member, bcm, activity))
        score = torch.stack(scores).mean(0)
        alive = self._group_alive(group)
        u = robust_normalise(score, self.cfg.low_percentile, self.cfg.high_percentile,
                             alive if self.cfg.alive_only else None,
                             empty_range=self._empty_range)
        reserve = self.unit_reserve[group.key]
        updated = reserve_update(reserve, u, offset=const.offset, bonus=const.bonus,
                                 factor=factors[group.kind], gamma=self.cfg.gamma)
        reserve.copy_(torch.where(alive, updated, reserve))
        dying = alive & (reserve < 0)
        result = {}
        if not bool(dying.any()):
            return result
        # every kept entry of a dying unit's row goes, in each member (pruning a unit of a
        # recurrent pair clears its row in both layers: MaskSet.prune_units); counted before
        # the edits, on those rows only (not twice over the whole layer)
        removed_in = {m: self.masks.kept_in_rows(m, dying) for m in group.members}
        alive_before = {m: self.masks.unit_alive(m) for m in group.members}
        for member in group.members:
            self.masks.prune_units(member, dying)
        for member in group.members:
            units = int(torch.count_nonzero(alive_before[member] & ~self.masks.unit_alive(member)))
            removed = removed_in[member]
            self.synapses_removed[member] += removed
            result[member] = (units, removed)
        return result

    def _spine_importance(self, name: str, bcm: torch.Tensor,
                          activity: torch.Tensor) -> torch.Tensor:
        ghost = self.ghosts.get(name)
        if ghost is None and name not in self.removed_bcm:
            return spine_importance(bcm, activity)
        units, sums = activity.numel(), self._row_sums(name, bcm)
        if ghost is not None:  # min-max over the kept and the removed (dead) units
            sums, activity = torch.cat([sums, ghost[0]]), torch.cat([activity, ghost[1]])
        return minmax_normalise(sums)[:units] * minmax_normalise(activity)[:units]

    def _summarise(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Events of the steps since the last epoch end, plus the structure now."""
        layers = {}
        full_entries = self.masks.full_entries
        for layer in self.layers:
            name = layer.name
            layers[name] = {
                "units_alive": int(self.masks.unit_alive(name).sum()),
                "units": self.full_units[name],
                "connectivity": self.masks.weight_connectivity(name),
                "mask_connectivity": 1.0 - self.synapses_removed[name] / full_entries[name],
                "units_pruned": sum(e["removed"][name]["units"] for e in events if e["pruned"]),
                "weights_pruned": sum(e["removed"][name]["weights"]
                                      for e in events if e["pruned"]),
            }
        last = next((e for e in reversed(events) if e["pruned"]), None)
        summary = {
            "steps": [e["step"] for e in events],
            "pruning_steps": sum(1 for e in events if e["pruned"]),
            "factor": last["factor"] if last else None,
            # the measured connectivity (static_metrics' Connectivity) and the entries DPAP's
            # masks keep; they differ by the input columns of dead units (hard mode)
            "connectivity": self.masks.weight_connectivity(),
            "mask_connectivity": 1.0 - sum(self.synapses_removed.values()) / sum(
                full_entries.values()),
            "layers": layers,
        }
        if self.temporal is not None:
            summary["time"] = self._time_summary(events)
        return summary

    def _time_summary(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        steps = [e["time"] for e in events if "time" in e]
        return {"time_steps": self.temporal.time_steps,
                "full_time_steps": self.temporal.full_time_steps,
                "dropped": sum(1 for s in steps if s["dropped"]),
                "contribution": self.temporal.last_contribution,
                "reserve": self.temporal.reserve}

    # -- in-training compaction --------------------------------------------------------------
    def compaction_refusal(self) -> str | None:
        if self.cfg.mode == "reference":
            return ("reference mode masks softly (pruned weights retrain until the next "
                    "step), so removing a pruned unit changes the run; use prune.mode=default")
        if not self.cfg.alive_only:
            return ("prune.dpap.normalise_over=all normalises over dead units too, which "
                    "removing them would change; use alive (or auto)")
        return self.recurrent_refusal("prune.dpap.exclude")

    def shrinkable_unread(self) -> frozenset[str]:
        """Untracked layers whose tracked readers are linear layers pruned by synapse only:
        an unread unit's columns there are all dead, which leave the percentile population
        (alive only) and feed no row sum, so their values (which keep changing on the masked
        run: the unit still fires) never reach a decision."""
        if self.compaction_refusal() is not None or self.temporal is not None:
            return frozenset()
        grouped = {m for g in self.unit_groups for m in g.members}
        synapse_only = {n for n in self.synapse_layers
                        if n not in grouped and self.structure[n].kind == "linear"}
        return frozenset(
            la.name for la in self.structure.layers if la.name not in self.stats
            and all(c.name in synapse_only for c, _ in self.structure.consumers(la.name)
                    if c.name in self.stats))

    @torch.no_grad()
    def shrink(self, keep: Any) -> bool:
        """Slice statistics, reserves and masks to the kept rows and columns. A removed
        column's synapses live on as constants (``removed_bcm``) with their reserves (after
        the kept columns in ``synapse_reserve``) and mask entries (``masks.removed``); a
        removed row's row sum and activity as ``ghosts``."""
        if self.compaction_refusal() is not None:
            return False
        for name, stats in self.stats.items():
            self._shrink_statistics(name, stats, keep.keep_out[name], keep.keep_in[name])
        for group in self.unit_groups:
            rows = keep.keep_out[group.members[0]].to(self.unit_reserve[group.key].device)
            self.unit_reserve[group.key] = self.unit_reserve[group.key][rows].contiguous()
        for name in self.synapse_layers:
            reserve, kept = self.synapse_reserve[name], self.masks[name].shape[1]
            reserve, removed = shrink_with_removed(
                reserve[:, :kept], reserve[:, kept:] if name in self.removed_bcm else None,
                keep.keep_out[name], keep.keep_in[name])
            self.synapse_reserve[name] = (reserve if removed is None
                                          else torch.cat([reserve, removed], 1))
        self.masks.shrink_(keep)
        self._scratch.clear()
        return True

    def _shrink_statistics(self, name: str, stats: LayerStatistics, rows: torch.Tensor,
                           cols: torch.Tensor | None) -> None:
        rows = rows.to(stats.bcm.device)
        bcm, activity = stats.window()
        gone = torch.ones(activity.numel(), dtype=torch.bool, device=rows.device)
        gone[rows] = False
        ghost = (self._row_sums(name, bcm)[gone], activity[gone])
        if name in self.ghosts:
            old = self.ghosts[name]
            ghost = (torch.cat([old[0], ghost[0]]), torch.cat([old[1], ghost[1]]))
        self.ghosts[name] = ghost
        # the removed columns' window: their input is zero since their units died, so M
        # gains exactly 0 there (a zero column of pre in the addmm); per_step windows were
        # restarted at that step (0), cumulative ones froze
        _, removed = shrink_with_removed(bcm, self.removed_bcm.get(name), rows, cols)
        if removed is not None:
            self.removed_bcm[name] = removed
        for attr in ("bcm", "bcm_mark"):
            value = getattr(stats, attr)
            if value is not None:
                setattr(stats, attr, shrink_with_removed(value, None, rows, cols)[0])
        for attr in ("activity", "theta_sum", "activity_mark"):
            value = getattr(stats, attr)
            if value is not None:
                setattr(stats, attr, value.index_select(0, rows).contiguous())
        stats.slot_theta = stats.slot_theta.index_select(1, rows).contiguous()

    # -- state ------------------------------------------------------------------------------
    def statistics(self) -> dict[str, torch.Tensor]:
        """Sums over samples (all-reduced by devprune.distributed.StatisticsSync). The removed
        columns' windows (``removed_bcm``) are constants taken from summed statistics at the
        shrink, the same on every rank: not sums, not synchronised."""
        stats = {}
        for name, layer_stats in self.stats.items():
            stats[f"{name}.bcm"] = layer_stats.bcm
            stats[f"{name}.activity"] = layer_stats.activity
            if self.cfg.theta == "per_unit":
                stats[f"{name}.theta_sum"] = layer_stats.theta_sum
                stats[f"{name}.theta_count"] = layer_stats.theta_count
        if self.temporal is not None:
            stats.update(self.temporal.statistics())
        return stats

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            config=dataclasses.asdict(self.cfg),
            batches=self.batches,
            next_step=self.next_step,
            steps_done=self.steps_done,
            stats={n: {k: v.cpu().clone() for k, v in s.tensors().items()}
                   for n, s in self.stats.items()},
            unit_reserve={k: v.cpu().clone() for k, v in self.unit_reserve.items()},
            synapse_reserve={k: v.cpu().clone() for k, v in self.synapse_reserve.items()},
            temporal=self.temporal.state_dict() if self.temporal is not None else None,
        )
        if self.ghosts or self.removed_bcm:  # a shrunk model: counts over the full sizes
            state["synapses_removed"] = dict(self.synapses_removed)
            state["ghosts"] = {n: [g[0].cpu().clone(), g[1].cpu().clone()]
                               for n, g in self.ghosts.items()}
            state["removed_bcm"] = {n: v.cpu().clone() for n, v in self.removed_bcm.items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if set(state["stats"]) != set(self.stats):
            raise CheckpointError(
                f"checkpoint DPAP statistics cover layers {sorted(state['stats'])}, this run "
                f"prunes {sorted(self.stats)}; use the same prune.dpap layer selection"
            )
        for name, tensors in state["stats"].items():
            target = self.stats[name]
            for key, value in tensors.items():
                setattr(target, _STAT_ATTRS[key], value.to(target.bcm.device).clone())
        for store, key in ((self.unit_reserve, "unit_reserve"),
                           (self.synapse_reserve, "synapse_reserve")):
            for name, value in state[key].items():
                store[name] = value.to(store[name].device).clone()
        self._load_temporal(state.get("temporal"))
        self.batches = int(state["batches"])
        self.next_step = int(state.get("next_step", 0))
        self.steps_done = int(state["steps_done"])
        self.synapses_removed = {n: int(torch.count_nonzero(~self.masks[n]))
                                 for n in self.masks.names()}
        if "synapses_removed" in state:
            self.synapses_removed = {n: int(v) for n, v in state["synapses_removed"].items()}
        device = next(iter(self.stats.values())).bcm.device
        self.ghosts = {n: (g[0].to(device).clone(), g[1].to(device).clone())
                       for n, g in (state.get("ghosts") or {}).items()}
        self.removed_bcm = {n: v.to(device).clone()
                            for n, v in (state.get("removed_bcm") or {}).items()}
        self._scratch.clear()


    def _load_temporal(self, state: dict[str, Any] | None) -> None:
        if (state is None) != (self.temporal is None):
            raise CheckpointError(
                "checkpoint and this run differ in prune.dpap.temporal (time-side pruning); "
                "resume with the run's own setting"
            )
        if self.temporal is not None:
            self.temporal.load_state_dict(state)


_STAT_ATTRS = {"bcm": "bcm", "activity": "activity", "theta_sum": "theta_sum",
               "theta_count": "theta_count", "slot_theta": "slot_theta",
               "slot_count": "slot_count", "bcm_mark": "bcm_mark",
               "activity_mark": "activity_mark"}

register_pruner("dpap", DPAPPruner, DPAPConfig,
                "DPAP: BCM + trace importance, reserve dynamics, permanent pruning (TPAMI 2024)")
