"""The no-autograd neuron loop (eval, compacted inference) fires exactly as the training loop."""

from __future__ import annotations

import pytest
import torch

from devprune.snn.neurons import IF, LIF, PLIF, STBPLIF, MembraneNeuron

NEURON_CASES = [
    pytest.param(lambda: STBPLIF(), id="stbp-lif"),
    pytest.param(lambda: STBPLIF(reset="soft"), id="stbp-lif-soft"),
    pytest.param(lambda: LIF(), id="lif"),
    pytest.param(lambda: LIF(reset="soft", detach_reset=False), id="lif-soft"),
    pytest.param(lambda: PLIF(tau_init=3.0), id="plif"),
    pytest.param(lambda: IF(v_reset=0.25), id="if-v-reset"),
    pytest.param(lambda: IF(reset="soft", threshold=0.3), id="if-soft"),
]


def currents(dtype: torch.dtype, threshold: float) -> torch.Tensor:
    """Random currents plus one column that lands exactly on the threshold at step 0 and
    columns a rounding step either side of it, where ``u > thr`` and ``u - thr > 0`` could
    only differ if the fused comparison were wrong."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(8, 5, 64, generator=generator, dtype=torch.float64).to(dtype) * 1.5
    at = torch.tensor(threshold, dtype=dtype)
    x[:, :, 0] = at
    x[:, :, 1] = torch.nextafter(at, torch.tensor(2.0, dtype=dtype))
    x[:, :, 2] = torch.nextafter(at, torch.tensor(0.0, dtype=dtype))
    return x


@pytest.mark.parametrize("make", NEURON_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inference_loop_gives_the_training_loops_spikes(make, dtype):
    neuron: MembraneNeuron = make().to(dtype)
    x = currents(dtype, neuron.threshold)
    trained = neuron(x.clone().requires_grad_())  # the differentiable loop
    with torch.no_grad():
        inferred = neuron(x)
    assert inferred.dtype == dtype and inferred.shape == x.shape
    assert 0 < inferred.sum() < inferred.numel()  # some spikes, not all
    assert torch.equal(inferred, trained.detach())


def test_inference_loop_reads_expanded_and_strided_input():
    # a DirectEncoder's broadcast view (stride 0 over time) and a transposed tensor
    neuron = STBPLIF()
    frame = torch.rand(4, 30, generator=torch.Generator().manual_seed(1))
    expanded = frame.unsqueeze(0).expand(6, 4, 30)
    strided = torch.rand(30, 4, 6).permute(2, 1, 0)
    for x in (expanded, strided):
        with torch.no_grad():
            inferred = neuron(x)
        assert torch.equal(inferred, neuron(x.contiguous().requires_grad_()).detach())


@pytest.mark.parametrize("steps", [1, 2, 3])
@pytest.mark.parametrize("make", [*NEURON_CASES, pytest.param(lambda: IF(), id="if")])
def test_inference_loop_short_runs_and_untouched_input(make, steps):
    # T = 1 (no reset at all) and T = 2 (no middle step) take the loop's edge paths; the
    # first step may use the input itself as membrane (STBP LIF, IF): it must stay unchanged
    neuron: MembraneNeuron = make()
    x = currents(torch.float32, neuron.threshold)[:steps]
    before = x.clone()
    with torch.no_grad():
        inferred = neuron(x)
    assert torch.equal(x, before)
    assert torch.equal(inferred, neuron(x.clone().requires_grad_()).detach())


def test_inference_loop_called_with_autograd_on():
    neuron = STBPLIF()
    x = currents(torch.float32, neuron.threshold).requires_grad_()
    spikes = neuron.run_inference(x, neuron.charge)
    assert not spikes.requires_grad
    assert torch.equal(spikes, neuron(x).detach())


def test_inference_threshold_follows_dtype_and_value():
    neuron = IF(threshold=0.3)
    x = currents(torch.float64, 0.3)
    with torch.no_grad():
        neuron(x.float())
        assert torch.equal(neuron(x), neuron(x.clone().requires_grad_()).detach())
        neuron.threshold = 0.6
        assert torch.equal(neuron(x), neuron(x.clone().requires_grad_()).detach())
    assert neuron.threshold_tensor(x).dtype == torch.float64
    assert float(neuron.threshold_tensor(x)) == 0.6
