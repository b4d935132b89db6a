"""The tiny synthetic experiment the runner tests share (plain data, importable)."""

TINY = {
    "description": "tiny synthetic run for tests",
    "data": {"name": "synthetic", "val_fraction": 0.2, "batch_size": 50,
             "eval_batch_size": 100, "seed": 3,
             "options": {"num_train": 300, "num_test": 100}},
    "model": {"name": "snn-mlp", "time_steps": 2, "kwargs": {"hidden": [24]}},
    "train": {"epochs": 3, "optimizer": "adam", "lr": 0.01, "loss": "rate_mse", "seed": 1,
              "device": "cpu"},
    "measure": {"subset": 50},
    "run": {"name": "tiny"},
}
