"""The benchmarks count and time what a time-repeated input costs: MACs as computed (one step
for a broadcast output) and the once / per-step comparison on equal outputs. Small, fast."""

import torch
from benchmarks.bench_compact import count_macs
from benchmarks.bench_repeated_input import bench_model, variants

from devprune.models import build_model


def test_count_macs_counts_one_step_of_a_broadcast_layer():
    # snn-mlp 784-16-10, T=3, direct encoding: the hidden layer computes one step of B rows,
    # the output layer reads T*B rows of spikes.
    model = build_model("snn-mlp", in_shape=(1, 28, 28), num_classes=10, time_steps=3,
                        hidden=[16])
    x = torch.rand(5, 1, 28, 28)
    assert count_macs(model, x) == 5 * 784 * 16 + 3 * 5 * 16 * 10
    model.encoder.register_forward_hook(lambda _m, _i, out: out.contiguous())
    assert count_macs(model, x) == 3 * 5 * 784 * 16 + 3 * 5 * 16 * 10  # materialised: T steps


def test_once_and_per_step_variants_agree():
    models = variants("snn-mlp", (1, 28, 28), 2)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(models["once"].eval()(x), models["per step"].eval()(x))
    row = bench_model("snn-mlp", (1, 28, 28), 2, 4, repeats=1)
    assert row["max_output_difference"] == 0.0
    assert {"ratio", "cpu_ratio"} <= set(row["train"]) and row["inference"]["ratio"] > 0
