"""``train(cfg, out_dir, resume)``: one experiment from config to run directory.

Order of one epoch (the reference codes' order): train with the per-batch Pruner hooks, then
``pruner.on_epoch_end`` (the structural step), then evaluate the just-pruned network on the
validation and test splits, log, checkpoint. Everything is seeded; on CPU a resumed run
reproduces the uninterrupted one bit for bit.

Under ``torchrun`` the same function runs data-parallel (docs/DISTRIBUTED.md): every rank
trains the DistributedDataParallel-wrapped model on its shard of each global batch, the
pruner's statistics are summed over ranks before each structural step (a
``StatisticsSync`` installed as ``pruner.synchroniser``), evaluation is split over the ranks
and summed, and rank 0 alone writes files and logs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from devprune import distributed, models
from devprune.errors import CheckpointError, ConfigError, TrainingDivergedError
from devprune.pruning.base import Pruner, build_pruner, default_epoch_fields
from devprune.runner import checkpoint as ckpt
from devprune.runner.compaction import batch_hook as compaction_batch_hook
from devprune.runner.compaction import (
    check_compaction,
    epoch_compaction,
    full_size_view,
    restore_compaction,
    shrink_session,
)
from devprune.runner.compaction import due as compaction_due
from devprune.runner.config import (
    Config,
    config_differences,
    config_hash,
    config_to_dict,
    dump_config,
)
from devprune.runner.data import RunData, build_run_data, per_rank_batch_size
from devprune.runner.loop import build_optimizer, build_scheduler, evaluate, train_epoch
from devprune.runner.measurements import measure_static, measure_workload
from devprune.runner.metrics import (
    RECORD_KEYS,
    git_commit,
    read_metrics,
    units_line,
    versions,
    write_metrics,
)
from devprune.runner.report import write_run_report
from devprune.runner.rundir import (  # the file names are re-exported for other modules
    BEST,
    CONFIG_FILE,
    LAST,
    METRICS_FILE,
    SUMMARY_FILE,
    prepare_run_dir,
)
from devprune.runner.runmodel import build_args, build_network
from devprune.utils.io import atomic_write_json, atomic_write_text

Log = Callable[[str], None]


def default_out_dir(cfg: Config) -> Path:
    return Path(cfg.run.out or Path("runs") / cfg.run.name)


# ------------------------------------------------------------------------------------------
# Runtime set-up
# ------------------------------------------------------------------------------------------


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: 'cuda' requested but no CUDA device is available; "
                          "use train.device=cpu (or auto)")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_torch(cfg: Config) -> torch.device:
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    # warn_only: a kernel without a deterministic variant must not stop a run.
    torch.use_deterministic_algorithms(cfg.train.deterministic, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = not cfg.train.deterministic
    seed_everything(cfg.train.seed)
    return select_device(cfg.train.device)


def _seed_other_rank(cfg: Config, epoch: int, rank: int) -> None:
    """Ranks > 0 of a data-parallel run draw their own random numbers (dropout, stochastic
    encoders), from a stream fixed by (seed, epoch, rank) so that a resumed run repeats them;
    rank 0 keeps the single-process stream, which its checkpoints carry."""
    seed_everything((cfg.train.seed * 1_000_003 + epoch * 10_007 + 7919 * rank) % (2**63 - 1))


# ------------------------------------------------------------------------------------------
# The run's mutable state
# ------------------------------------------------------------------------------------------


@dataclass
class Session:
    """Everything one training process holds; built once, restored from ``last.pt``."""

    cfg: Config
    out: Path
    device: torch.device
    data: RunData
    model: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]
    pruner: Pruner
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loss_fn: Callable
    epochs_done: int = 0
    wall_time_s: float = 0.0
    best: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    # data-parallel runs: the DDP-wrapped forward for training (None: ``forward``), this
    # process's rank and the number of processes
    train_forward: Callable[[torch.Tensor], torch.Tensor] | None = None
    rank: int = 0
    world_size: int = 1
    # what in-training compaction removed so far (runner.compaction; None: full model)
    compaction: Any = None

    @property
    def hash(self) -> str:
        return config_hash(self.cfg)

    @property
    def main(self) -> bool:
        """True on the process that writes the run directory and logs (rank 0)."""
        return self.rank == 0


def _fitted_to_run(method_config: Any, epochs: int, batches_per_epoch: int) -> Any:
    """A method's settings with the schedule fitted to this run where the method can and is
    asked to (``fit_to_run``; DPAP's ``cadence: fit``)."""
    fit = getattr(method_config, "fit_to_run", None)
    return method_config if fit is None else fit(epochs, batches_per_epoch)


def build_session(cfg: Config, out: Path) -> Session:
    """Data, model, pruner, optimizer and schedule, all seeded from ``cfg``."""
    device = distributed.process_device(configure_torch(cfg))
    rank, world = distributed.rank(), distributed.world_size()
    data = build_run_data(cfg.data, device, cfg.measure.subset, rank=rank, world_size=world)
    model = build_network(build_args(cfg)).to(device)
    pruner = build_pruner(cfg.prune.method, model, data.example_input.to(device),
                          _fitted_to_run(cfg.method_config(), cfg.train.epochs, len(data.train)))
    check_compaction(cfg, pruner)
    optimizer = build_optimizer(model, cfg.train)
    pruner.bind_optimizer(optimizer)
    scheduler = build_scheduler(optimizer, cfg.train)
    forward = torch.compile(model) if cfg.train.compile else model
    train_forward = None
    if world > 1:
        # Pruner hooks and masks stay on the inner modules and parameters; DDP only
        # averages the gradients of the forward/backward it wraps.
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
        train_forward = torch.compile(wrapped) if cfg.train.compile else wrapped
        pruner.synchroniser = distributed.StatisticsSync(pruner)
    return Session(cfg=cfg, out=out, device=device, data=data, model=model, forward=forward,
                   pruner=pruner, optimizer=optimizer, scheduler=scheduler,
                   loss_fn=models.get_loss(cfg.train.loss), train_forward=train_forward,
                   rank=rank, world_size=world)


# ------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------


def save_session(s: Session, path: Path) -> None:
    payload = ckpt.build_payload(
        epochs_done=s.epochs_done, model=s.model, optimizer=s.optimizer,
        scheduler=s.scheduler, pruner=s.pruner, config=config_to_dict(s.cfg),
        config_hash=s.hash, best=s.best, generators=s.data.generators)
    payload["wall_time_s"] = s.wall_time_s
    if s.compaction is not None:  # a shrunk model: how to rebuild its shapes
        payload["compaction"] = s.compaction.state()
    ckpt.save_checkpoint(path, payload)


RESUME_KEYS = ("epochs_done", "model", "optimizer", "scheduler", "pruner", "rng", "best",
               "config", "config_hash")


def check_resumable(cfg: Config, path: Path, payload: dict[str, Any]) -> None:
    """Refuse to continue checkpoint ``payload`` (read from ``path``) under ``cfg`` when the
    computation differs or ``cfg`` asks for fewer epochs than were already done."""
    missing = [k for k in RESUME_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}: it is not a complete "
                              "`devprune train` checkpoint, so the run cannot continue from it")
    if payload["config_hash"] != config_hash(cfg):
        diffs = config_differences(payload["config"], cfg) or ["(settings hash differs)"]
        raise CheckpointError(
            f"checkpoint {path} was written with a different configuration: "
            f"{'; '.join(diffs[:6])}. Resume with the run's own config ("
            f"devprune train {path.parent / CONFIG_FILE} --resume --out {path.parent}) or "
            "start a new run in another --out directory"
        )
    done = int(payload["epochs_done"])
    if cfg.train.epochs < done:
        raise CheckpointError(
            f"--resume: train.epochs={cfg.train.epochs} but {path.parent} has already "
            f"completed {done} epochs; resume with train.epochs >= {done} (its config has "
            f"{payload['config']['train']['epochs']}), or start a new run in another --out"
        )


def restore_session(s: Session, path: Path, payload: dict[str, Any] | None = None) -> None:
    """Load ``path`` (or its already read ``payload``) into ``s``; refuse a checkpoint written
    under another configuration."""
    payload = ckpt.load_checkpoint(path) if payload is None else payload
    check_resumable(s.cfg, path, payload)
    if payload.get("compaction"):  # written after an in-training shrink: shrink the same way
        restore_compaction(s, payload["compaction"])
    ckpt.load_model_state(s.model, payload["model"], path, time_steps=payload.get("time_steps"))
    try:
        s.optimizer.load_state_dict(payload["optimizer"])
        s.scheduler.load_state_dict(payload["scheduler"])
        s.pruner.load_state_dict(payload["pruner"])
    except (CheckpointError, KeyError, ValueError, TypeError, IndexError, RuntimeError) as err:
        detail = " ".join(str(err).split())[:300]
        raise CheckpointError(f"checkpoint {path}: its optimizer / scheduler / pruner state "
                              f"does not fit this run ({type(err).__name__}: {detail}); it was "
                              "edited or written for another model: resume from another "
                              "checkpoint or start the run again") from err
    if s.pruner.synchroniser is not None:
        s.pruner.synchroniser.rebase()  # saved statistics were summed over ranks already
    ckpt.restore_rng(payload["rng"], s.data.generators)
    s.epochs_done = int(payload["epochs_done"])
    s.wall_time_s = float(payload.get("wall_time_s", 0.0))
    s.best = dict(payload["best"])
    # Epochs logged after this checkpoint are re-run, so their lines are dropped.
    s.records = [r for r in read_metrics(s.out / METRICS_FILE, RECORD_KEYS)
                 if r["epoch"] < s.epochs_done]


def _snapshot(s: Session) -> None:
    cfg = s.cfg.run
    name = f"epoch-{s.epochs_done:03d}.pt"
    save_session(s, s.out / name)
    snapshots = sorted(s.out.glob("epoch-*.pt"))
    for old in snapshots[: max(len(snapshots) - cfg.keep, 0)]:
        old.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------
# One epoch
# ------------------------------------------------------------------------------------------


def run_epoch(s: Session, epoch: int, *, progress: bool) -> dict[str, Any]:
    """Train, prune, evaluate and measure one epoch; returns its metrics record."""
    start = time.perf_counter()
    lr = s.optimizer.param_groups[0]["lr"]
    s.data.start_epoch(epoch)
    parallel = s.world_size > 1
    if parallel and not s.main:
        _seed_other_rank(s.cfg, epoch, s.rank)
    start_peak = peak_weight(s.model)
    shrinks: list[dict[str, Any]] = []  # in-training compaction within and after the epoch
    fit = train_epoch(s.model, s.data.train, s.loss_fn, s.optimizer, s.pruner, epoch=epoch,
                      device=s.device, forward=s.train_forward or s.forward,
                      progress=progress and s.main, all_reduce=parallel,
                      after_batch=compaction_batch_hook(s, epoch, shrinks))
    # before anything of this epoch is written
    check_weights(s.model, epoch, lr, s.out)
    check_runaway(s.model, epoch, lr, s.out, start_peak=start_peak,
                  accuracy=fit.accuracy, classes=s.data.info.num_classes)
    events = s.pruner.on_epoch_end(epoch) or {}
    # Statistics summed over ranks before the checkpoint saves them (no-op in one process).
    s.pruner.synchronise()
    if compaction_due(s.cfg, epoch) and (shrunk := shrink_session(s)) is not None:
        shrinks.append(shrunk)
    shrunk = epoch_compaction(shrinks)
    s.scheduler.step()
    val = evaluate(s.model, s.data.val, s.loss_fn, device=s.device, forward=s.forward,
                   all_reduce=parallel) if s.data.val is not None else None
    test = evaluate(s.model, s.data.test, s.loss_fn, device=s.device, forward=s.forward,
                    all_reduce=parallel)
    record: dict[str, Any] = {
        "epoch": epoch, "lr": lr,
        "train_loss": fit.loss, "train_accuracy": fit.accuracy,
        "val_loss": val.loss if val else None, "val_accuracy": val.accuracy if val else None,
        "test_loss": test.loss, "test_accuracy": test.accuracy,
    }
    measured, measured_pruner = full_size_view(s)  # a shrunk model measured at full size
    record.update(measure_static(measured, measured_pruner.masks,
                                 example_input=measured_pruner.example_input))
    if _measure_now(s.cfg, epoch) and s.main:  # rank 0 alone measures the workload
        record["workload"] = measure_workload(measured, s.data.measure, s.cfg.measure, s.device)
    record["pruning"] = events
    if shrunk is not None:
        record["compaction"] = shrunk
    record["epoch_time_s"] = time.perf_counter() - start
    return record


# A weight past this magnitude means the optimisation ran away: a spiking network's loss
# stays finite (spikes are bounded) while its weights explode and its accuracy sits at chance.
WEIGHT_LIMIT = 1e10


def check_weights(model: nn.Module, epoch: int, lr: float, out: Path | None = None) -> None:
    """Raise TrainingDivergedError when a parameter of ``model`` is non-finite or larger in
    magnitude than :data:`WEIGHT_LIMIT` (after ``epoch``, trained at ``lr``)."""
    worst: tuple[str, float] | None = None
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not param.is_floating_point() or param.numel() == 0:
                continue
            if not bool(torch.isfinite(param).all()):
                worst = (name, float("nan"))
                break
            peak = float(param.abs().max())
            if peak > WEIGHT_LIMIT and (worst is None or peak > worst[1]):
                worst = (name, peak)
    if worst is None:
        return
    name, peak = worst
    what = "non-finite values" if peak != peak else f"|w| = {peak:.3g} (limit {WEIGHT_LIMIT:.0e})"
    kept = _kept_note(out)
    raise TrainingDivergedError(
        f"training diverged: parameter {name} has {what} after epoch {epoch + 1} (lr "
        f"{lr:.3g}), so the network can only answer at chance; lower train.lr (e.g. --set "
        f"train.lr={lr / 100:.3g}) or add warm-up (train.warmup_epochs){kept}"
    )


def _kept_note(out: Path | None) -> str:
    """What a diverged run leaves behind, for the end of its error message."""
    if out is None:
        return ""
    if (out / LAST).is_file():
        return f"; {out / LAST} (the last good epoch) is kept"
    return f"; nothing was checkpointed in {out}"


# An epoch that multiplies the largest weight by more than this and ends with training
# accuracy at chance diverged (normal training changes the largest weight by a few times).
RUNAWAY_GROWTH = 100.0


def peak_weight(model: nn.Module) -> float:
    """The largest finite |w| over the floating-point parameters of ``model``."""
    with torch.no_grad():
        peaks = [float(p.detach().abs().nan_to_num(0.0, 0.0, 0.0).max())
                 for p in model.parameters() if p.is_floating_point() and p.numel()]
    return max(peaks, default=0.0)


def check_runaway(model: nn.Module, epoch: int, lr: float, out: Path | None, *,
                  start_peak: float, accuracy: float, classes: int) -> None:
    """Raise TrainingDivergedError when the epoch grew the largest weight more than
    :data:`RUNAWAY_GROWTH`-fold and left training accuracy at chance (1/classes + 2 points):
    a learning rate too large for a spiking network, whose loss stays finite."""
    end_peak = peak_weight(model)
    if classes < 2 or accuracy > 1.0 / classes + 0.02:
        return
    if end_peak <= RUNAWAY_GROWTH * max(start_peak, 1e-3):
        return
    kept = _kept_note(out)
    raise TrainingDivergedError(
        f"training diverged: epoch {epoch + 1} grew the largest weight from {start_peak:.3g} "
        f"to {end_peak:.3g} and training accuracy is at chance ({100 * accuracy:.1f}%, lr "
        f"{lr:.3g}); lower train.lr (e.g. --set train.lr={lr / 100:.3g}) or add warm-up "
        f"(train.warmup_epochs){kept}"
    )


def empty_layers(records: list[dict[str, Any]]) -> dict[str, int]:
    """Prunable layers whose every unit was pruned, with the (0-based) epoch it happened."""
    found: dict[str, int] = {}
    for record in records:
        for name, layer in (record.get("layers") or {}).items():
            if (name not in found and layer.get("prunable")
                    and layer.get("units_alive") == 0 and layer.get("units_total")):
                found[name] = int(record["epoch"])
    return found


def _measure_now(cfg: Config, epoch: int) -> bool:
    last = epoch == cfg.train.epochs - 1
    return last or (cfg.measure.every > 0 and (epoch + 1) % cfg.measure.every == 0)


def _update_best(s: Session, record: dict[str, Any]) -> bool:
    val = record["val_accuracy"]
    if val is None or val <= s.best.get("val_accuracy", -1.0):
        return False
    s.best = {"epoch": record["epoch"], "val_accuracy": val,
              "test_accuracy": record["test_accuracy"],
              "connectivity": record.get("connectivity")}
    return True


def epoch_line(record: dict[str, Any], epochs: int, pruner: Pruner | None = None) -> str:
    """The one-line epoch summary printed during training; ``pruner`` formats its own fields
    from the epoch's events (None: the shared keys, :func:`default_epoch_fields`)."""
    val = record["val_accuracy"]
    val_text = f"val {100 * val:.2f}%" if val is not None else "val -"
    line = (f"epoch {record['epoch'] + 1:>3}/{epochs}  loss {record['train_loss']:.4f}  "
            f"{val_text}  test {100 * record['test_accuracy']:.2f}%  "
            f"conn {100 * record['connectivity']:.1f}%  units [{units_line(record['layers'])}]")
    events = record.get("pruning") or {}
    fields = pruner.epoch_fields(events) if pruner is not None else default_epoch_fields(events)
    shrunk = record.get("compaction")  # in-training compaction removed units this epoch
    if shrunk:
        fields = [*fields, f"shrunk {shrunk['params_before']:,} -> {shrunk['params_after']:,} "
                           "params"]
    return line + "".join(f"  {field}" for field in fields) + f"  {record['wall_time_s']:.0f}s"


# ------------------------------------------------------------------------------------------
# The whole run
# ------------------------------------------------------------------------------------------


def train(
    cfg: Config,
    out_dir: str | Path | None = None,
    *,
    resume: bool = False,
    quiet: bool = False,
    log: Log = print,
    stop_after: int | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Run the experiment ``cfg`` into ``out_dir`` (default ``runs/<run.name>``).

    ``resume`` continues from ``out_dir/last.pt``. ``force`` writes into a folder that is not
    this configuration's run (rules: :mod:`devprune.runner.rundir`). ``stop_after`` ends
    this process after that many completed epochs as an interruption would (for time-sliced
    jobs and tests);
    the run is then resumable and has no summary yet. Returns the summary (or ``{}``).

    Launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), every process calls
    this; they form a process group for the run and rank 0 alone writes and logs.
    """
    out = Path(out_dir) if out_dir is not None else default_out_dir(cfg)
    launch = distributed.launch_env()
    if launch is not None:  # fail before any process group is formed
        per_rank_batch_size(cfg.data.batch_size, launch.world_size)
    with distributed.process_group(lambda: select_device(cfg.train.device)):
        result = _train(cfg, out, resume=resume, quiet=quiet, log=log, stop_after=stop_after,
                        force=force)
        distributed.barrier()  # rank 0 has written everything before any rank returns
        return result


def _train(cfg: Config, out: Path, *, resume: bool, quiet: bool, log: Log,
           stop_after: int | None, force: bool = False) -> dict[str, Any]:
    main = distributed.is_main()
    if not main:
        log, quiet = _silent, True
    run_dir = prepare_run_dir(out, cfg, resume=resume, force=force)  # reads only
    payload = _checked_checkpoint(cfg, out) if run_dir.resume else None
    s = build_session(cfg, out)
    if payload is not None:
        restore_session(s, out / LAST, payload)
    distributed.barrier()  # every rank has checked the directory before rank 0 changes it
    if main:  # the run starts: nothing was changed in `out` before this point
        notes = run_dir.apply()
        for note in notes if not quiet else []:
            log(note)
        atomic_write_text(out / CONFIG_FILE, dump_config(cfg))
    if payload is not None and not quiet:
        log(f"resuming {out} after epoch {s.epochs_done}{_changed(payload, cfg)}")
    if not quiet:
        log(_banner(s))
    while s.epochs_done < cfg.train.epochs:
        if stop_after is not None and s.epochs_done >= stop_after:
            return {}
        _one_epoch(s, quiet=quiet, log=log)
    return finish(s, log=log)


def _checked_checkpoint(cfg: Config, out: Path) -> dict[str, Any]:
    """``out/last.pt``, read and checked against ``cfg`` before any work is done."""
    payload = ckpt.load_checkpoint(out / LAST)
    check_resumable(cfg, out / LAST, payload)
    return payload


def _changed(payload: dict[str, Any], cfg: Config) -> str:
    """The allowed changes (more epochs, threads, device...) a resume applies, for the log."""
    diffs = config_differences(payload["config"], cfg, include_exempt=True)
    diffs = [d for d in diffs if not d.startswith(("run.", "description"))]
    return f" with changed settings: {'; '.join(diffs)}" if diffs else ""


def _one_epoch(s: Session, *, quiet: bool, log: Log) -> None:
    epoch = s.epochs_done
    started = time.perf_counter()
    record = run_epoch(s, epoch, progress=not quiet)
    s.wall_time_s += time.perf_counter() - started
    record["wall_time_s"] = s.wall_time_s
    s.epochs_done = epoch + 1
    s.records.append(record)
    improved = _update_best(s, record)  # every rank keeps the same state; rank 0 writes
    if not s.main:
        return
    emptied = [n for n, e in empty_layers(s.records).items() if e == epoch]
    if emptied and not s.cfg.run.allow_empty_layers:
        log(f"warning: epoch {epoch + 1}: pruning removed every unit of {', '.join(emptied)} "
            "(connectivity 0: no signal passes); the run will end with exit code 3 unless "
            "run.allow_empty_layers=true")
    write_metrics(s.out / METRICS_FILE, s.records)
    if improved:
        save_session(s, s.out / BEST)
    run = s.cfg.run
    if s.epochs_done % run.checkpoint_every == 0 or s.epochs_done == s.cfg.train.epochs:
        save_session(s, s.out / LAST)
        if run.keep:
            _snapshot(s)
    log(epoch_line(record, s.cfg.train.epochs, s.pruner))


def _silent(_: str) -> None:
    """The log of ranks > 0."""


def _banner(s: Session) -> str:
    cfg = s.cfg
    params = sum(p.numel() for p in s.model.parameters())
    return (f"devprune train: {cfg.run.name} | {cfg.model.name} on {cfg.data.name} "
            f"({len(s.data.train_set)} train / {s.data.val_size} val / "
            f"{len(s.data.test_set)} test) | {params:,} params | method {cfg.prune.method} "
            f"({cfg.prune.mode}) | {cfg.train.epochs} epochs | {s.device}{_processes(s)} | "
            f"out {s.out}")


def _processes(s: Session) -> str:
    if s.world_size == 1:
        return ""
    return (f" x {s.world_size} processes (batch {s.cfg.data.batch_size} = "
            f"{s.world_size} x {s.cfg.data.batch_size // s.world_size})")


def finish(s: Session, *, log: Log = print) -> dict[str, Any]:
    """Write ``summary.json``, the report and plots; returns the summary."""
    summary = build_summary(s)
    if s.main:
        atomic_write_json(s.out / SUMMARY_FILE, summary)
        write_run_report(s.out)
        log(final_line(summary))
    return summary


def build_summary(s: Session) -> dict[str, Any]:
    last = s.records[-1]
    by_test = max(s.records, key=lambda r: r["test_accuracy"])
    cfg = s.cfg
    best = dict(s.best) or None
    if best is not None and best.get("connectivity") is None:  # checkpoints before the field
        best["connectivity"] = next((r["connectivity"] for r in s.records
                                     if r["epoch"] == best["epoch"]), None)
    return {
        "run": cfg.run.name, "description": cfg.description,
        "dataset": cfg.data.name, "model": cfg.model.name,
        "method": cfg.prune.method, "mode": cfg.prune.mode,
        "epochs": s.epochs_done,
        # Each of these pairs an accuracy with the connectivity of the same epoch.
        "final": {"epoch": last["epoch"], "test_accuracy": last["test_accuracy"],
                  "val_accuracy": last["val_accuracy"], "connectivity": last["connectivity"]},
        "best_val": best,
        # The reference codes' "best test epoch": selected on the test set, never a headline.
        "best_test_reference": {"epoch": by_test["epoch"],
                                "test_accuracy": by_test["test_accuracy"],
                                "connectivity": by_test["connectivity"]},
        "connectivity": last["connectivity"],  # of the final epoch
        # prunable layers left with no unit, and the epoch (0-based) it happened
        "empty_layers": empty_layers(s.records),
        "params_total": last["params_total"], "params_nonzero": last["params_nonzero"],
        "units": {name: {"alive": v["units_alive"], "total": v["units_total"]}
                  for name, v in last["layers"].items()},
        "static": last.get("static"),
        "workload": last.get("workload"),
        "time_steps": getattr(s.model, "time_steps", None),
        "wall_time_s": s.wall_time_s,
        "device": str(s.device),
        **({"processes": s.world_size} if s.world_size > 1 else {}),
        "config_hash": s.hash,
        "versions": versions(),
        "git": git_commit(),
    }


def final_line(summary: dict[str, Any]) -> str:
    best = summary["best_val"]
    best_conn = best.get("connectivity") if best else None
    best_text = (f"best-val epoch {best['epoch'] + 1}: test {100 * best['test_accuracy']:.2f}%"
                 + (f" at connectivity {100 * best_conn:.1f}%" if best_conn is not None else "")
                 if best else "no validation split")
    return (f"done: final test {100 * summary['final']['test_accuracy']:.2f}% at "
            f"connectivity {100 * summary['connectivity']:.1f}%, {best_text}, "
            f"{summary['params_nonzero']:,}/{summary['params_total']:,} params non-zero, "
            f"{summary['wall_time_s']:.0f}s")
