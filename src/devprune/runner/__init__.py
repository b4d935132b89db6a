"""Experiments: config schema and presets, the training loop, checkpoints, reports, plots.

Typical use from Python::

    from devprune.runner import load_config, train
    cfg = load_config("mnist-mlp-dense-quick", ["train.epochs=2"])
    summary = train(cfg, "runs/try")
"""

from devprune.runner.config import Config, config_from_dict, config_to_dict, load_config
from devprune.runner.presets import list_presets
from devprune.runner.train import train

__all__ = ["Config", "config_from_dict", "config_to_dict", "list_presets", "load_config",
           "train"]
