"""``devprune eval RUN``: re-evaluate a run's checkpoint on its test split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devprune.errors import ConfigError
from devprune.runner import checkpoint as ckpt
from devprune.runner.config import load_config
from devprune.runner.loop import evaluate
from devprune.runner.measurements import measure_static, measure_workload
from devprune.runner.train import BEST, CONFIG_FILE, LAST, build_session
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
    session = build_session(cfg, run_dir)
    from devprune.compact.live import expand_checkpoint

    # a checkpoint written after an in-training shrink, in the config's full architecture
    payload = expand_checkpoint(session.model, payload, session.pruner.example_input)
    ckpt.load_model_state(session.model, payload["model"], path,
                          time_steps=payload.get("time_steps"))
    test = evaluate(session.model, session.data.test, session.loss_fn, device=session.device)
    structure = measure_static(session.model, session.pruner)
    result = {
        "run": cfg.run.name, "checkpoint": path.name,
        "epochs_done": int(payload["epochs_done"]),
        "test_accuracy": test.accuracy, "test_loss": test.loss, "test_samples": test.samples,
        "connectivity": structure["connectivity"],
        "params_nonzero": structure["params_nonzero"],
        "params_total": structure["params_total"],
        "workload": measure_workload(session.model, session.data.measure, cfg.measure,
                                     session.device),
    }
    result["path"] = str(run_dir / f"eval-{path.stem}.json")
    atomic_write_json(result["path"], result)
    return result
