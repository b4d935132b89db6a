"""Multi-step layers equal the plain layer applied to every time step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from devprune.errors import LayoutError
from devprune.snn import layers as ms


@pytest.mark.parametrize(
    ("layer", "step_shape"),
    [
        (ms.Conv2d(2, 3, 3, padding=1), (2, 5, 5)),
        (ms.Linear(4, 3), (4,)),
        (ms.AvgPool2d(2), (2, 4, 4)),
        (ms.MaxPool2d(2), (2, 4, 4)),
        (ms.AdaptiveAvgPool2d(1), (2, 4, 4)),
        (ms.SeqToANN(nn.ReLU()), (3, 2)),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "",
)
def test_folded_layer_equals_per_step(layer, step_shape):
    x = torch.randn(3, 2, *step_shape)
    plain = _plain(layer)
    expected = torch.stack([plain(step) for step in x.unbind(0)])
    torch.testing.assert_close(layer(x), expected)


def _plain(layer: nn.Module):
    """The single-step forward of the torch class a multi-step layer derives from."""
    if isinstance(layer, ms.SeqToANN):
        return layer.module
    base = next(c for c in type(layer).__mro__[1:] if c.__module__.startswith("torch.nn"))
    return lambda s: base.forward(layer, s)


def test_batchnorm_statistics_span_time_and_batch():
    bn = ms.BatchNorm2d(2)
    x = torch.randn(4, 3, 2, 5, 5) * 3 + 1
    y = bn(x)
    torch.testing.assert_close(y.mean(dim=(0, 1, 3, 4)), torch.zeros(2), atol=1e-5, rtol=0)


def test_flatten_keeps_time_and_batch():
    assert ms.Flatten()(torch.zeros(4, 3, 2, 5, 5)).shape == (4, 3, 50)


def test_layers_are_torch_classes_and_multi_step():
    assert isinstance(ms.Conv2d(1, 1, 1), nn.Conv2d) and isinstance(ms.Linear(1, 1), nn.Linear)
    assert all(ms.is_multi_step(cls.__new__(cls)) for cls in ms.MULTI_STEP_LAYERS)
    assert not ms.is_multi_step(nn.Conv2d(1, 1, 1))


def test_single_step_input_is_rejected():
    with pytest.raises(LayoutError, match="multi-step"):
        ms.Conv2d(1, 1, 3)(torch.zeros(2, 1, 5, 5))
    with pytest.raises(LayoutError, match="Flatten"):
        ms.Flatten()(torch.zeros(2, 3))
    with pytest.raises(LayoutError, match="SeqToANN"):
        ms.SeqToANN(nn.ReLU())(torch.zeros(3))


def test_seq_to_ann_traces_through_with_fx():
    import torch.fx as fx

    class ChildlessLeaves(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return not any(True for _ in m.children())

    model = nn.Sequential(ms.SeqToANN(nn.Conv2d(2, 3, 1)), ms.Flatten())
    traced = fx.GraphModule(model, ChildlessLeaves().trace(model))
    x = torch.randn(3, 2, 2, 4, 4)
    torch.testing.assert_close(traced(x), model(x))


@pytest.mark.parametrize(
    ("layer", "step_shape"),
    [
        (ms.Conv2d(2, 3, 3, padding=1), (2, 5, 5)),
        (ms.Linear(4, 3), (4,)),
        (ms.MaxPool2d(2), (2, 4, 4)),
        (ms.BatchNorm2d(2).eval(), (2, 4, 4)),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "",
)
def test_input_repeated_over_time_is_computed_once(layer, step_shape):
    # A directly encoded image: one step's tensor broadcast over T (stride 0). The layer runs
    # on that one step and repeats its result (still a broadcast view); the values, and the
    # gradient autograd sums over the repeats, equal those of the folded run.
    image = torch.randn(2, *step_shape, requires_grad=True)
    repeated = image.expand(4, *image.shape)
    out = layer(repeated)
    assert out.shape[0] == 4 and out.stride(0) == 0  # one step computed, then broadcast
    copied = image.detach().clone().requires_grad_(True)
    folded = layer(copied.expand(4, *image.shape).contiguous())
    torch.testing.assert_close(out, folded)
    assert folded.stride(0) != 0  # a materialised input is folded as before
    if any(p.requires_grad for p in layer.parameters()):
        out.pow(2).sum().backward()
        grads = [p.grad.clone() for p in layer.parameters()]
        layer.zero_grad()
        folded.pow(2).sum().backward()
        for grad, param in zip(grads, layer.parameters(), strict=True):
            torch.testing.assert_close(grad, param.grad)
        torch.testing.assert_close(image.grad, copied.grad)


def test_batchnorm_in_training_folds_a_repeated_input():
    # Training statistics count all T*B rows (the running variance's unbiased correction
    # depends on that count): a repeated input is materialised, as any other.
    bn = ms.BatchNorm1d(3)
    image = torch.randn(5, 3)
    bn(image.expand(4, 5, 3))
    reference = nn.BatchNorm1d(3)
    reference(image.expand(4, 5, 3).reshape(20, 3))
    torch.testing.assert_close(bn.running_var, reference.running_var)
