"""The benchmark-only replica of the reference engine (benchmarks/reference_engine.py) agrees
with devprune where their semantics coincide, so the same-run speed ratios compare like
with like. Small tensors only (fast)."""

import numpy as np
import torch
from benchmarks.reference_engine import (
    ReferenceDPAPBookkeeping,
    ReferenceDPAPMask,
    ReferenceSetRanges,
)
from torch import nn

from devprune.pruning import build_pruner
from devprune.pruning.dpap import DPAPConfig, LayerStatistics
from devprune.pruning.importance import trace_readout
from devprune.pruning.spine_ranges import SpineRanges


def _outputs(steps=4, batch=3):
    gen = torch.Generator().manual_seed(3)
    shapes = [(2, 5, 5), (4, 5, 5), (4, 5, 5), (100,), (6,)]
    return [(torch.rand(steps, batch, *s, generator=gen) < 0.4).float() for s in shapes]


def test_bookkeeping_matches_per_slot_last_readout():
    outputs = _outputs()
    layers = [(0, 1), (1, 2), (3, 4)]
    replica = ReferenceDPAPBookkeeping(outputs, layers, batch=3, steps=4)
    per_step = [list(s) for s in zip(*(o.unbind(0) for o in outputs), strict=True)]
    stats = {post: LayerStatistics(outputs[post].shape[2], outputs[pre].shape[2], "per_slot",
                                   False, torch.device("cpu")) for pre, post in layers}
    for _ in range(3):
        replica.update(per_step)
        for pre, post in layers:
            stats[post].update(trace_readout(outputs[pre]), trace_readout(outputs[post]))
    for _pre, post in layers:
        torch.testing.assert_close(stats[post].bcm, replica.bcm[post], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stats[post].activity, replica.trace_total[post])
        torch.testing.assert_close(stats[post].slot_theta, replica.theta[post])


def test_epoch_step_matches_reference_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 5, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(5 * 4 * 4, 7), nn.ReLU(), nn.Linear(7, 3))
    const = {"conv_reserve": 0.6, "fc_neuron_reserve": 0.6, "fc_synapse_reserve": 0.6,
             "conv_kappa": 3.0, "fc_neuron_kappa": 3.0, "fc_synapse_kappa": 3.0}
    pruner = build_pruner("dpap", model, torch.zeros(1, 2, 4, 4),
                          DPAPConfig(mode="reference", start=0, **const))
    gen = torch.Generator().manual_seed(1)
    for stats in pruner.stats.values():
        stats.bcm.copy_(torch.randn(stats.bcm.shape, generator=gen).abs_())
        stats.activity.copy_(torch.rand(stats.activity.shape, generator=gen) * 10)
    weights = {la.name: la.weight.detach().clone() for la in pruner.layers}
    kinds = {la.name: "conv" if la.kind == "conv" else "fc" for la in pruner.layers}
    replica = ReferenceDPAPMask(weights, kinds, conv=(0.65, 5.0, 0.6, 3.0),
                                fc=(1.5, 2.0, 0.6, 3.0))
    bcm = {n: s.bcm.clone() for n, s in pruner.stats.items()}
    activity = {n: s.activity.clone() for n, s in pruner.stats.items()}
    for epoch in range(5, 12):
        pruner.prune_step(epoch)
        replica.step(bcm, activity, epoch)
        for la in pruner.layers:
            assert torch.equal(pruner.masks[la.name], replica.fullbook[la.name].bool())
            assert torch.equal(la.weight.detach(), weights[la.name])
    assert pruner.masks.connectivity() < 1.0  # the comparison saw pruning


def test_set_ranges_match_vectorised_counter():
    torch.manual_seed(1)
    w = torch.randn(16, 24) * 0.05
    vec = SpineRanges(w, 3, 0.75)
    ref = ReferenceSetRanges(w.numpy(), 3)
    drift = torch.randn(16, 24) * 0.01
    for _ in range(8):
        w = w + drift + torch.randn(16, 24) * 0.005
        vec.update(w)
        ref.update(w.numpy().ravel().astype(np.float32))
    assert np.allclose(vec.upper.numpy().ravel(), ref.pos, atol=1e-6)
    assert np.allclose(vec.lower.numpy().ravel(), ref.neg, atol=1e-6)
    assert not np.allclose(ref.pos, ref.pos[0])  # some bounds moved
