"""Throughput of the event pipeline (samples/s): decode + integrate, cache write, cache read.

Builds, in a temporary folder, recordings in the publishers' formats with realistic sizes
(N-MNIST: ~4,000 events per 34x34 sample; DVS128 Gesture: AEDAT 3.1 recordings of 11
gestures, ``--gesture-events`` events each), then times ``get_dataset`` on them:

- ``no cache``: decode every file and integrate frames (``cache=False``);
- ``cold cache``: the same plus writing every sample's frames to the cache (first epoch);
- ``warm cache``: frames read back from the cache, no decoding (every later run).

It also times the derived dataset (``mnist-dvs-derived``: simulation of real MNIST images,
then a warm-cache reload) when real MNIST is under ``--mnist-root``. The machine is shared,
so compare rows of one run; the 1-minute load average is recorded.

    .venv/bin/python benchmarks/bench_events.py                 # results/events.{json,md}
    .venv/bin/python benchmarks/bench_events.py --nmnist 500 --gesture-recordings 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from devprune.data import get_dataset
from devprune.utils.io import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).parent / "results"
THROUGHPUT_ARGS = ("nmnist", "nmnist_events", "gesture_recordings", "gesture_events", "derived",
                   "mnist_root", "threads")
AEDAT31_HEADER = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#!END-HEADER\r\n"


def random_stream(rng: np.random.Generator, n: int, size: int, duration_us: int):
    t = np.sort(rng.integers(0, duration_us, n))
    return t, rng.integers(0, size, n), rng.integers(0, size, n), rng.integers(0, 2, n)


def write_nmnist_folder(folder: Path, samples: int, events: int, seed: int = 0) -> None:
    """``Test/<digit>/*.bin`` files of 5-byte ATIS records (vectorised encoder)."""
    rng = np.random.default_rng(seed)
    for i in range(samples):
        t, x, y, p = random_stream(rng, events, 34, 300_000)
        rec = np.stack([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF], 1)
        path = folder / "Test" / str(i % 10) / f"{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rec.astype(np.uint8).tobytes())


def write_gesture_folder(folder: Path, recordings: int, events_per_gesture: int) -> None:
    """AEDAT 3.1 recordings of 11 gestures (6 s each) + labels csv + trial list."""
    rng = np.random.default_rng(1)
    names = []
    for r in range(recordings):
        stem = f"user{24 + r:02d}_fluorescent"
        t, x, y, p = random_stream(rng, events_per_gesture * 11, 128, 66_000_000)
        x, y, p = (a.astype(np.uint32) for a in (x, y, p))
        data = (x << 17) | (y << 2) | (p << 1) | 1
        body = bytearray()
        for start in range(0, len(t), 4096):  # jAER-sized packets
            n = min(4096, len(t) - start)
            body += struct.pack("<hhiiiiii", 1, 1, 8, 4, 0, n, n, n)
            packet = np.empty(n, dtype=[("d", "<u4"), ("t", "<i4")])
            packet["d"], packet["t"] = data[start : start + n], t[start : start + n]
            body += packet.tobytes()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.aedat").write_bytes(AEDAT31_HEADER + bytes(body))
        rows = [f"{c + 1},{c * 6_000_000},{(c + 1) * 6_000_000}" for c in range(11)]
        (folder / f"{stem}_labels.csv").write_text("class,startTime_usec,endTime_usec\n"
                                                   + "\n".join(rows) + "\n")
        names.append(f"{stem}.aedat")
    (folder / "trials_to_test.txt").write_text("\n".join(names) + "\n")


def timed(build: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = build()
    return time.perf_counter() - start, out


def pipeline_rows(name: str, root: Path, options: dict) -> list[dict]:
    rows = []
    for label, extra in (("no cache", {"cache": False}), ("cold cache", {}),
                         ("warm cache", {})):
        seconds, ds = timed(lambda extra=extra: get_dataset(name, "test", root, **options,
                                                            **extra))
        rows.append({"dataset": name, "mode": label, "samples": len(ds),
                     "seconds": round(seconds, 3),
                     "samples_per_s": round(len(ds) / seconds, 1),
                     "frame_shape": list(ds.info.in_shape)})
    return rows


def derived_rows(mnist_root: Path, samples: int, scratch: Path) -> list[dict]:
    if not (mnist_root / "mnist" / "train-images-idx3-ubyte").is_file():
        return []
    root = scratch / "derived"
    (root / "mnist").mkdir(parents=True)
    for f in (mnist_root / "mnist").iterdir():
        if f.is_file():
            os.symlink(f, root / "mnist" / f.name)
    rows = []
    for label in ("simulate (cold cache)", "warm cache"):
        seconds, ds = timed(lambda: get_dataset("mnist-dvs-derived", "test", root,
                                                limit=samples))
        rows.append({"dataset": "mnist-dvs-derived", "mode": label, "samples": len(ds),
                     "seconds": round(seconds, 3),
                     "samples_per_s": round(len(ds) / seconds, 1),
                     "frame_shape": list(ds.info.in_shape)})
    return rows


def truncation_study(mnist_root: Path, train_n: int, test_n: int, epochs: int,
                     steps: int, seed: int = 0) -> dict:
    """Evidence for the time-side pruning decision (docs/NEUROMORPHIC.md): train snn-small on
    derived events with T = ``steps``, then evaluate simulating only the first t frames.

    For each t: test accuracy, the training loss (rate MSE) of the cumulative readout, and
    its mean correct-class margin (rate of the label minus the best other rate): candidate
    per-step signals for the proposed temporal reserve.
    """
    from devprune.data import TensorBatchLoader
    from devprune.models import build_model, get_loss

    torch.manual_seed(seed)
    opts = {"time_steps": steps}
    train = get_dataset("mnist-dvs-derived", "train", mnist_root, val_fraction=0.0,
                        limit=train_n, seed=seed, **opts)
    test = get_dataset("mnist-dvs-derived", "test", mnist_root, limit=test_n, **opts)
    model = build_model("snn-small", in_shape=train.info.in_shape, num_classes=10)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = get_loss("rate_mse")
    for _ in range(epochs):
        model.train()
        for x, y in TensorBatchLoader(train, 100, shuffle=True, seed=seed):
            optimiser.zero_grad()
            loss_fn(model(x), y).backward()
            optimiser.step()
    model.eval()
    rows = []
    with torch.no_grad():
        x, y = test.batch(torch.arange(len(test)))
        for t in range(1, steps + 1):
            model.encoder.time_steps = t
            rates = model(x)
            label_rate = rates.gather(1, y[:, None]).squeeze(1)
            others = rates.scatter(1, y[:, None], float("-inf")).max(1).values
            rows.append({"simulated_steps": t,
                         "accuracy": round((rates.argmax(1) == y).float().mean().item(), 4),
                         "rate_mse": round(loss_fn(rates, y).item(), 5),
                         "mean_margin": round((label_rate - others).mean().item(), 4)})
    return {"dataset": "mnist-dvs-derived", "model": "snn-small", "train_samples": train_n,
            "test_samples": test_n, "epochs": epochs, "frames": steps, "rows": rows}


def truncation_markdown(study: dict, command: str) -> str:
    lines = [
        "# Simulating fewer steps than frames (derived events, snn-small)",
        "",
        f"Trained on {study['train_samples']} `mnist-dvs-derived` samples for "
        f"{study['epochs']} epochs with T = {study['frames']} frames (Adam 1e-3, rate MSE), "
        f"tested on {study['test_samples']} samples simulating only the first t frames.",
        f"Command: `{command}`",
        "",
        "| simulated steps t | test accuracy | rate MSE (training loss) | mean correct-class "
        "margin |",
        "|---:|---:|---:|---:|",
    ]
    for r in study["rows"]:
        lines.append(f"| {r['simulated_steps']} | {r['accuracy']} | {r['rate_mse']} | "
                     f"{r['mean_margin']} |")
    return "\n".join(lines) + "\n"


def markdown(result: dict) -> str:
    lines = [
        "# Event pipeline throughput",
        "",
        f"Machine: {result['machine']}, torch threads {result['threads']}, "
        f"load average {result['load_average']} (shared CPU: compare rows of one run).",
        f"Command: `{result['command']}`",
        "",
        "| dataset | mode | samples | seconds | samples/s | frames |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['dataset']} | {r['mode']} | {r['samples']} | {r['seconds']} | "
                     f"{r['samples_per_s']} | {tuple(r['frame_shape'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nmnist", type=int, default=2000, help="N-MNIST-format samples")
    parser.add_argument("--nmnist-events", type=int, default=4000)
    parser.add_argument("--gesture-recordings", type=int, default=3)
    parser.add_argument("--gesture-events", type=int, default=100_000)
    parser.add_argument("--derived", type=int, default=1000, help="derived samples (0: skip)")
    parser.add_argument("--mnist-root", type=Path,
                        default=Path(os.environ.get("DEVPRUNE_DATA",
                                                    Path.home() / ".cache/devprune/data")))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "events")
    parser.add_argument("--truncation", action="store_true",
                        help="instead: train snn-small on derived events and evaluate with "
                             "fewer simulated steps (results/events.truncation.*)")
    parser.add_argument("--train-samples", type=int, default=3000)
    parser.add_argument("--test-samples", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.truncation:
        run_truncation(args)
        return
    scratch = Path(tempfile.mkdtemp(prefix="bench-events-"))
    try:
        write_nmnist_folder(scratch / "nmnist", args.nmnist, args.nmnist_events)
        write_gesture_folder(scratch / "dvs-gesture" / "DvsGesture", args.gesture_recordings,
                             args.gesture_events)
        rows = pipeline_rows("nmnist", scratch, {"time_steps": 20})
        rows += pipeline_rows("dvs-gesture", scratch, {"time_steps": 64})
        if args.derived:
            rows += derived_rows(args.mnist_root, args.derived, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
        "threads": args.threads,
        "load_average": round(os.getloadavg()[0], 2),
        "command": "python benchmarks/bench_events.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
            if k in THROUGHPUT_ARGS),
        "rows": rows,
    }
    atomic_write_json(args.out.with_suffix(".json"), result)
    atomic_write_text(args.out.with_suffix(".md"), markdown(result))
    print(json.dumps(rows, indent=1))


def run_truncation(args: argparse.Namespace) -> None:
    study = truncation_study(args.mnist_root, args.train_samples, args.test_samples,
                             args.epochs, args.frames)
    command = (f"python benchmarks/bench_events.py --truncation --train-samples "
               f"{args.train_samples} --test-samples {args.test_samples} --epochs "
               f"{args.epochs} --frames {args.frames} --threads {args.threads}")
    stem = args.out.parent / f"{args.out.name}.truncation"
    atomic_write_json(f"{stem}.json", {**study, "command": command})
    atomic_write_text(f"{stem}.md", truncation_markdown(study, command))
    print(json.dumps(study["rows"], indent=1))


if __name__ == "__main__":
    main()
