"""2x2 average pooling as strided adds gives ATen's ``avg_pool2d`` bits, forward and backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from devprune.snn import layers as ms
from devprune.snn.pooling import FastAvgPool2d, avg_pool_2x2, takes_strided_path


def _inputs(shape: tuple[int, ...], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    normal = torch.randn(shape, generator=g, dtype=dtype) * 10
    return {
        "spikes": (torch.rand(shape, generator=g) > 0.6).to(dtype),
        "normal": normal,
        # sums where the order of the adds changes the rounding
        "mixed scales": normal * torch.logspace(-8, 8, shape[-1], dtype=dtype),
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(3, 2, 4, 6), (16, 15, 28, 28), (8, 40, 14, 14)])
def test_forward_and_backward_equal_aten_bit_for_bit(shape, dtype) -> None:
    for name, x in _inputs(shape, dtype).items():
        assert takes_strided_path(nn.AvgPool2d(2), x)
        assert torch.equal(avg_pool_2x2(x), F.avg_pool2d(x, 2)), name
        upstream = torch.randn(F.avg_pool2d(x, 2).shape, dtype=dtype)
        ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
        avg_pool_2x2(ours).backward(upstream)
        F.avg_pool2d(theirs, 2).backward(upstream)
        assert torch.equal(ours.grad, theirs.grad), name


def test_a_value_checked_by_hand() -> None:
    x = torch.tensor([[1.0, 2.0, 0.0, 0.0],
                      [3.0, 6.0, 1.0, 1.0]]).view(1, 1, 2, 4)
    assert avg_pool_2x2(x).tolist() == [[[[3.0, 0.5]]]]  # (1+2+3+6)/4, (0+0+1+1)/4
    x.requires_grad_()
    avg_pool_2x2(x).backward(torch.tensor([[[[4.0, 8.0]]]]))
    assert x.grad.view(2, 4).tolist() == [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]]


def test_second_derivatives_are_right() -> None:
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(avg_pool_2x2, (x,))
    assert torch.autograd.gradgradcheck(avg_pool_2x2, (x,))


@pytest.mark.parametrize("pool, x", [
    (nn.AvgPool2d(2), torch.randn(2, 3, 5, 4)),  # odd height
    (nn.AvgPool2d(2, padding=1), torch.randn(2, 3, 4, 4)),
    (nn.AvgPool2d(2, ceil_mode=True), torch.randn(2, 3, 4, 4)),
    (nn.AvgPool2d(2, divisor_override=3), torch.randn(2, 3, 4, 4)),
    (nn.AvgPool2d(3, stride=2), torch.randn(2, 3, 8, 8)),
    (nn.AvgPool2d(2), torch.randn(2, 3, 4, 4).to(torch.bfloat16)),  # accumulates in float
    (nn.AvgPool2d(2), torch.randn(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)),
    (nn.AvgPool2d(2), torch.randn(2, 3, 4, 8)[..., ::2]),  # not contiguous
])
def test_other_cases_keep_atens_kernel(pool, x) -> None:
    assert not takes_strided_path(pool, x)
    fast = FastAvgPool2d(pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode,
                         pool.count_include_pad, pool.divisor_override)
    assert torch.equal(fast(x), pool(x))


def test_the_multi_step_layer_takes_it_and_equals_the_torch_layer_per_step(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr("devprune.snn.pooling.avg_pool_2x2",
                        lambda x: calls.append(x.shape) or F.avg_pool2d(x, 2))
    x = (torch.rand(4, 3, 2, 6, 6) > 0.5).float()  # [T, B, C, H, W]
    out = ms.AvgPool2d(2)(x)
    assert calls == [torch.Size([12, 2, 6, 6])]  # once, time folded into the batch
    assert torch.equal(out, torch.stack([nn.AvgPool2d(2)(step) for step in x]))


def test_a_frozen_model_needs_no_autograd_function() -> None:
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    assert type(avg_pool_2x2(x).grad_fn).__name__ == "_AvgPool2x2Backward"
    with torch.no_grad():
        assert avg_pool_2x2(x).grad_fn is None
