"""``devprune eval RUN``: re-evaluate a run's checkpoint on its test split.

Only what scoring needs is built: the run's network with the checkpoint's weights and masks
(:mod:`devprune.runner.runmodel`) and the test and measurement loaders; no training data,
pruner or optimizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devprune.errors import ConfigError
from devprune.models import get_loss
from devprune.runner import checkpoint as ckpt
from devprune.runner.config import load_config
from devprune.runner.data import build_eval_data
from devprune.runner.loop import evaluate
from devprune.runner.measurements import measure_static, measure_workload
from devprune.runner.rundir import BEST, CONFIG_FILE, LAST
from devprune.runner.runmodel import build_args, example_batch, restore_model
from devprune.runner.train import configure_torch
from devprune.utils.io import atomic_write_json


def _checkpoint_path(run_dir: Path, which: str) -> Path:
    preferred = run_dir / (BEST if which == "best" else LAST)
    if preferred.is_file():
        return preferred
    if which == "best" and (run_dir / LAST).is_file():
        return run_dir / LAST  # runs without a validation split have no best.pt
    raise ConfigError(f"{run_dir} holds no {preferred.name}; pass a run directory written by "
                      "`devprune train`")


def evaluate_run(run_dir: str | Path, which: str = "best") -> dict[str, Any]:
    """Test accuracy, connectivity and workload of ``best.pt`` / ``last.pt``; writes eval.json."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(f"{run_dir} holds no {CONFIG_FILE}; pass a run directory")
    cfg = load_config(str(run_dir / CONFIG_FILE), [])
    path = _checkpoint_path(run_dir, which)
    payload = ckpt.load_checkpoint(path)
    ckpt.require_entries(payload, path, ("model", "epochs_done"))
    # seeded as training was, so a stochastic encoder draws what it drew before this module
    # stopped building a whole training session
    device = configure_torch(cfg)
    example = example_batch(build_args(cfg)["in_shape"])
    model, masks = restore_model(cfg, payload, path, example, device)
    data = build_eval_data(cfg.data, device, cfg.measure.subset)
    test = evaluate(model, data.test, get_loss(cfg.train.loss), device=device)
    structure = measure_static(model, masks, example_input=example.to(device))
    result = {
        "run": cfg.run.name, "checkpoint": path.name,
        "epochs_done": int(payload["epochs_done"]),
        "test_accuracy": test.accuracy, "test_loss": test.loss, "test_samples": test.samples,
        "connectivity": structure["connectivity"],
        "params_nonzero": structure["params_nonzero"],
        "params_total": structure["params_total"],
        "workload": measure_workload(model, data.measure, cfg.measure, device),
    }
    result["path"] = str(run_dir / f"eval-{path.stem}.json")
    atomic_write_json(result["path"], result)
    return result
