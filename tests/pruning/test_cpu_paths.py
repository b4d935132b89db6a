"""The numpy-view CPU paths of the SD-SNN epoch step (devprune.cpu_ops) give the same bits as
the plain torch paths they replace (which run off the CPU): ranges, clipping, width
importance, regrowth counters, and the helpers themselves."""

import pytest
import torch

import devprune.cpu_ops as cpu_ops
from devprune.cpu_ops import any_trailing, row_counts
from devprune.pruning.regrowth import RegrowthTracker
from devprune.pruning.spine_ranges import SpineRanges


def _drive_ranges(shape, epochs=12, c=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g) * 0.05
    ranges = SpineRanges(w, c, 0.75)
    drift = torch.randn(shape, generator=g) * 0.01
    events, clipped, widths = [], [], []
    for epoch in range(epochs):
        w = w + drift + torch.randn(shape, generator=g) * 0.005
        if epoch % 4 == 3:
            drift = -drift
        events.append(ranges.update(w))
        weight = w.clone()
        clipped.append((ranges.clip_(weight), weight))
        mask = torch.rand(shape, generator=g) > 0.3
        widths.append(ranges.width_importance(mask=mask).clone())
    return ranges, events, clipped, widths


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32) if t.dtype == torch.float32 else t


@pytest.mark.parametrize("shape", [(64, 300), (16, 8, 3, 3), (70001,)])
def test_spine_ranges_numpy_path_equals_torch_path(shape, monkeypatch):
    fast = _drive_ranges(shape)
    monkeypatch.setattr(cpu_ops, "_numpy_ok", lambda *tensors: False)  # torch paths (GPU)
    slow = _drive_ranges(shape)
    assert [e.__dict__ for e in fast[1]] == [e.__dict__ for e in slow[1]]
    assert sum(e.expanded_upper + e.expanded_lower + e.shrunk for e in fast[1]) > 0
    for (n_fast, w_fast), (n_slow, w_slow) in zip(fast[2], slow[2], strict=True):
        assert n_fast == n_slow
        assert torch.equal(_bits(w_fast), _bits(w_slow))
    for a, b in zip(fast[3], slow[3], strict=True):
        assert torch.equal(_bits(a), _bits(b))
    for name in SpineRanges._TENSORS:
        assert torch.equal(_bits(getattr(fast[0], name)), _bits(getattr(slow[0], name))), name


def _drive_tracker(shape, epochs=10, seed=1):
    g = torch.Generator().manual_seed(seed)
    tracker = RegrowthTracker(shape, torch.device("cpu"), 2)
    out = []
    base = torch.randn(shape, generator=g)
    for _ in range(epochs):
        signal = base + 0.3 * torch.randn(shape, generator=g)
        candidates = torch.rand(shape, generator=g) > 0.5
        restore, threshold = tracker.step(signal, candidates, 60.0, 2)
        out.append((restore.clone(), threshold))
    return tracker, out


def test_regrowth_tracker_numpy_path_equals_torch_path(monkeypatch):
    fast = _drive_tracker((40, 50))
    monkeypatch.setattr(cpu_ops, "_numpy_ok", lambda *tensors: False)
    slow = _drive_tracker((40, 50))
    assert sum(int(r.sum()) for r, _ in fast[1]) > 0
    for (ra, ta), (rb, tb) in zip(fast[1], slow[1], strict=True):
        assert ta == tb and torch.equal(ra, rb)
    assert torch.equal(fast[0].count, slow[0].count)
    assert torch.equal(fast[0].was_above, slow[0].was_above)


@pytest.mark.parametrize("shape", [(7, 9), (5, 4, 3, 3), (3, 0), (4, 2, 1, 1)])
def test_any_trailing_and_row_counts(shape):
    mask = torch.rand(shape) < 0.1
    for keep in range(1, len(shape)):
        assert torch.equal(any_trailing(mask, keep), mask.flatten(keep).any(keep))
    assert torch.equal(row_counts(mask), mask.flatten(1).sum(1, dtype=torch.int32))


@pytest.mark.parametrize("shape", [(7, 9), (5, 4, 3, 3), (70001,)])
def test_count_kept_nonzero_and_logical_and(shape):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(shape, generator=g) * (torch.rand(shape, generator=g) > 0.4)
    mask = torch.rand(shape, generator=g) > 0.3
    assert cpu_ops.count_kept_nonzero(x, mask) == int(torch.count_nonzero((x != 0) & mask))
    columns = (torch.rand(shape[1:2] if len(shape) > 1 else shape, generator=g) > 0.5)
    live = columns.reshape([1, -1] + [1] * (len(shape) - 2)) if len(shape) > 1 else columns
    assert torch.equal(cpu_ops.logical_and(mask, live), mask & live)


@pytest.mark.parametrize("make", [
    lambda m: m,  # contiguous bool: numpy view
    lambda m: m.t(),  # non-contiguous: torch fallback
    lambda m: m.to(torch.uint8),
])
def test_count_and_all_true_equal_torch(make):
    g = torch.Generator().manual_seed(5)
    for mask in (torch.rand(6, 9, generator=g) > 0.3, torch.ones(6, 9, dtype=torch.bool),
                 torch.zeros(6, 9, dtype=torch.bool), torch.ones(0, 3, dtype=torch.bool)):
        tensor = make(mask)
        assert cpu_ops.count(tensor) == int(torch.count_nonzero(tensor))
        assert cpu_ops.all_true(tensor) == bool(tensor.all())


@pytest.mark.parametrize("shape", [(7, 9), (3, 70001), (4, 5, 3, 3)])
def test_clear_where_equals_torch(shape):
    g = torch.Generator().manual_seed(6)
    mask = torch.rand(shape, generator=g) > 0.3
    for remove in (torch.rand(shape, generator=g) > 0.6,  # same shape: numpy blocks
                   (torch.rand(shape[:2], generator=g) > 0.5)
                   .reshape(*shape[:2], *[1] * (len(shape) - 2)).expand(shape)):  # a view
        expected = mask & ~remove
        newly = int(torch.count_nonzero(mask & remove))
        version = mask._version
        assert cpu_ops.clear_where(mask, remove) == newly
        assert torch.equal(mask, expected)
        assert mask._version > version or newly == 0
        assert cpu_ops.clear_where(mask, remove) == 0  # nothing left to clear


def test_negative_into_a_buffer():
    from devprune.pruning.importance import negative

    v = torch.tensor([[-1.0, 0.0, 2.0], [-0.0, -3.5, 1e-30]])
    out = torch.empty(2, 3, dtype=torch.bool)
    assert negative(v, out=out) is out
    assert torch.equal(out, v < 0)
    assert torch.equal(negative(v), v < 0)
    assert torch.equal(negative(v.t(), out=torch.empty(3, 2, dtype=torch.bool)), v.t() < 0)
