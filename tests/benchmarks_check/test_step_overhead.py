"""The per-batch overhead benchmarks (bench_dpap, bench_sdsnn) run on a tiny step: both
phases timed, the developing one with dead units, the settled one recording nothing."""

import pytest
from benchmarks.bench_dpap import dpap_overhead
from benchmarks.bench_sdsnn import _developing, _past_the_end, sdsnn_overhead
from benchmarks.step_overhead import overhead_table

from devprune.models import build_model
from devprune.pruning import build_pruner


@pytest.mark.parametrize("run", [lambda: dpap_overhead("snn-mlp", 4, 2, 1, "default"),
                                 lambda: sdsnn_overhead("snn-mlp", 4, 2, 1)])
def test_both_phases_are_timed(run):
    row = run()
    for key in ("ratio", "cpu_ratio", "after_end_ratio", "after_end_cpu_ratio"):
        assert row[key] > 0, key
    assert "| snn-mlp | default | 4 | 2 |" in "\n".join(overhead_table([row], "X"))


def test_the_sdsnn_phases_are_what_they_claim():
    import torch

    model = build_model("snn-mlp", in_shape=(1, 28, 28), num_classes=10, time_steps=2)
    pruner = build_pruner("sdsnn", model, torch.rand(4, 1, 28, 28), {"count_threshold": 2})
    _developing(pruner)
    name = pruner.layers[0].name
    assert pruner._accumulating() and not bool(pruner.masks.unit_alive(name)[0])
    _past_the_end(pruner)
    assert not pruner._accumulating() and pruner.removal_is_final()
