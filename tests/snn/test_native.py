"""The compiled LIF kernel (devprune.snn.native) computes the torch loops' bits, and
everything falls back to the torch loops when it is off, unbuilt or wrong."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch

from devprune.models import build_model
from devprune.snn import fused, native
from devprune.snn.neurons import LIF, STBPLIF, MembraneNeuron
from devprune.snn.surrogate import Rectangular, Sigmoid, qgate_grad, rectangular_grad

_INT = {torch.float32: torch.int32, torch.float64: torch.int64}
STBP = fused.Charge("add", 0.2)


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bits (``torch.equal`` calls -0.0 and 0.0 equal; this does not)."""
    return t.contiguous().view(_INT[t.dtype])


@pytest.fixture
def kernels():
    module = native.kernels()
    if module is None:
        pytest.skip("the native LIF kernel is not built on this machine")
    return module


@pytest.fixture
def fresh_kernels(monkeypatch):
    """``native.kernels()`` rebuilt from scratch for the test, its cache restored after."""
    native.kernels.cache_clear()
    yield
    monkeypatch.undo()
    native.kernels.cache_clear()


def _currents(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=dtype) * 0.6 + 0.3
    flat = x.view(-1)
    flat[:4] = torch.tensor([0.5, -0.0, 0.0, 0.25], dtype=dtype)  # at the threshold, zeros
    return x


CHARGES = [STBP, fused.Charge("add", 0.7), fused.Charge("lerp", 0.5), fused.Charge("lerp", 1 / 3),
           fused.Charge("lerp", 2 / 3), fused.Charge("lerp", 1.0)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 7), (4, 3, 5), (8, 4, 15, 6, 6), (5, 2, 1100)])
@pytest.mark.parametrize("threshold", [0.5, 1 / 3])
@pytest.mark.parametrize("charge", CHARGES, ids=str)
def test_forward_gives_the_torch_loops_bits(kernels, dtype, shape, threshold, charge) -> None:
    x = _currents(shape, dtype)
    th = torch.tensor(threshold, dtype=dtype)
    spikes, charged = native.forward(x, charge, th.item(), keep_charged=True)
    want_charged, want_spikes = fused.torch_forward(x, charge, th)
    assert torch.equal(_bits(spikes), _bits(want_spikes))
    if charge.kind == "add":
        assert torch.equal(_bits(charged), _bits(want_charged))
    else:  # ATen's scalar lerp (tensors under one vector) may give -0.0 where this gives 0.0
        assert torch.equal(charged, want_charged)
    if x.numel() > 100:  # the small shapes may not fire at all with a slow leak
        assert 0 < spikes.sum() < spikes.numel()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("surrogate_grad, parameter", [
    (rectangular_grad, 0.5), (rectangular_grad, 0.3), (qgate_grad, 2.0), (qgate_grad, 3.0)])
@pytest.mark.parametrize("shape", [(1, 9), (4, 3, 5), (6, 2, 1100)])
@pytest.mark.parametrize("charge", [STBP, fused.Charge("lerp", 0.5), fused.Charge("lerp", 1 / 3),
                                    fused.Charge("lerp", 2 / 3)], ids=str)
def test_backward_gives_the_torch_loops_bits(kernels, dtype, detach_reset, surrogate_grad,
                                             parameter, shape, charge) -> None:
    x = _currents(shape, dtype, seed=3)
    th = torch.tensor(0.5, dtype=dtype)
    charged, spikes = fused.torch_forward(x, charge, th)
    grad = torch.randn(shape, generator=torch.Generator().manual_seed(4), dtype=dtype)
    got = native.backward(grad, charged, spikes, charge, 0.5, surrogate_grad, parameter,
                          detach_reset)
    want = fused.torch_backward(grad, charged, spikes, charge, th, surrogate_grad, parameter,
                                detach_reset)
    assert torch.equal(_bits(got), _bits(want))
    assert got.abs().sum() > 0


def test_repeated_and_strided_inputs(kernels) -> None:
    """A directly encoded input repeated over T (stride 0) is read in place; a transposed
    one is copied first; both give the per-step loop's spikes."""
    neuron = STBPLIF()
    base = _currents((3, 40), torch.float32)
    for x in (base.expand(5, 3, 40), _currents((5, 40, 3), torch.float32).transpose(1, 2)):
        with torch.no_grad():
            got = neuron.run_inference(x, neuron.charge)
            want = MembraneNeuron.run_inference(neuron, x, neuron.charge)
        assert torch.equal(got, want)


def test_results_do_not_depend_on_the_thread_count(kernels) -> None:
    x = _currents((4, 64, 3000), torch.float32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = native.forward(x, STBP, 0.5, keep_charged=False)[0]
        torch.set_num_threads(2)
        two = native.forward(x, STBP, 0.5, keep_charged=False)[0]
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


def test_a_zoo_model_trains_to_the_same_weights_with_and_without_the_kernel(
        kernels, monkeypatch) -> None:
    def train() -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = build_model("snn-mlp", in_shape=(1, 28, 28), num_classes=10, time_steps=4)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(1)
        for _ in range(3):
            x = torch.rand(16, 1, 28, 28, generator=g)
            loss = torch.nn.functional.cross_entropy(model(x), torch.arange(16) % 10)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            return [*(p.detach().clone() for p in model.parameters()), model(x)]

    with_kernel = train()
    monkeypatch.setattr(native, "supports", lambda x: False)
    without = train()
    assert all(torch.equal(a, b) for a, b in zip(with_kernel, without, strict=True))


def test_other_surrogates_keep_the_torch_backward(kernels, monkeypatch) -> None:
    """Only the rectangular and QGate surrogates' backward is compiled (Sigmoid's exp would
    not round as torch's does)."""
    def not_for_sigmoid(*args, **kwargs):
        raise AssertionError("the compiled backward ran for Sigmoid")

    monkeypatch.setattr(native, "backward", not_for_sigmoid)
    x = _currents((4, 3, 5), torch.float32).requires_grad_()
    neuron = STBPLIF(surrogate=Sigmoid(4.0))
    neuron.run_differentiable(x, neuron.charge).sum().backward()
    assert x.grad.abs().sum() > 0


def test_switched_off_by_the_environment(fresh_kernels, monkeypatch) -> None:
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    assert native.kernels() is None
    x = _currents((4, 3, 5), torch.float32)
    assert not native.supports(x)
    neuron = STBPLIF(surrogate=Rectangular())
    with torch.no_grad():
        assert torch.equal(neuron.run_inference(x, neuron.charge),
                           fused.torch_forward(x, STBP, torch.tensor(0.5))[1])


def test_a_failed_build_warns_and_falls_back(fresh_kernels, monkeypatch) -> None:
    def no_compiler():
        raise RuntimeError("g++: not found")

    monkeypatch.setattr(native, "_build", no_compiler)
    with pytest.warns(RuntimeWarning, match="could not be built.*g\\+\\+: not found"):
        assert native.kernels() is None
    assert not native.supports(torch.zeros(2, 3))


def test_a_kernel_that_disagrees_with_torch_is_not_used(fresh_kernels, monkeypatch) -> None:
    class Wrong:
        @staticmethod
        def lif_forward(x, kind, factor, threshold, keep_charged):
            return [(x >= threshold).to(x.dtype), x.clone()]  # >= where the loop has >

    monkeypatch.setattr(native, "_build", lambda: Wrong)
    with pytest.warns(RuntimeWarning, match="differs from the torch loop \\(forward"):
        assert native.kernels() is None


def test_a_traced_model_records_the_torch_ops(kernels) -> None:
    """The kernel is invisible to torch.jit.trace: traced models keep the torch loops and
    stay correct on new inputs."""
    neuron = STBPLIF()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices
        traced = torch.jit.trace(neuron, _currents((4, 3, 5), torch.float32), check_trace=False)
        other = _currents((4, 3, 5), torch.float32, seed=9)
        assert torch.equal(traced(other), neuron(other))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threshold", [0.3, 1 / 3])
def test_inference_rounds_the_threshold_as_torch_does(kernels, dtype, threshold) -> None:
    """run_inference hands the kernel the Python float; the kernel rounds it to x's dtype,
    the value the torch loop compares with."""
    neuron = STBPLIF(threshold=threshold)
    x = _currents((4, 6, 300), dtype)
    x.view(-1)[:50] = torch.tensor(threshold, dtype=dtype)  # exactly on the threshold
    with torch.no_grad():
        got = neuron.run_inference(x, neuron.charge)
        want = MembraneNeuron.run_inference(neuron, x, neuron.charge)
    assert torch.equal(got, want)


def test_a_build_killed_midway_blocks_nothing(kernels, tmp_path) -> None:
    """torch's loader waits forever on a lock file a killed build left; devprune clears it
    under its own flock (which dies with its process) and loads the kernel."""
    import shutil
    import subprocess
    import sys

    built = Path(kernels.__file__).parent
    cache = tmp_path / "cache"
    shutil.copytree(built, cache / built.name)  # the finished build, mtimes kept
    (cache / built.name / "lock").touch()  # what a SIGKILL during a build leaves
    script = ("from devprune.snn import native; "
              "assert native.kernels() is not None; print('loaded')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=240, env={**os.environ, native.ENV_CACHE: str(cache)})
    assert done.returncode == 0, done.stderr
    assert "loaded" in done.stdout
    assert not (cache / built.name / "lock").exists()


@pytest.mark.parametrize("tau", [2.0, 3.0, 1.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_braincog_lif_inference_gives_the_per_step_loops_spikes(kernels, tau, dtype) -> None:
    neuron = LIF(tau=tau)
    for x in (_currents((4, 6, 300), dtype) + 0.3, _currents((6, 300), dtype).expand(4, 6, 300)):
        with torch.no_grad():
            got = neuron.run_inference(x, neuron.charge)
            want = MembraneNeuron.run_inference(neuron, x, neuron.charge)
        assert torch.equal(got, want) and 0 < got.sum() < got.numel()


def test_status_says_what_ran_without_building(fresh_kernels, monkeypatch) -> None:
    def never(*args):
        raise AssertionError("status() built the kernel")

    monkeypatch.setattr(native, "_build", never)
    assert native.status() == "unused"
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    assert not native.supports(torch.zeros(2, 3))
    assert native.status() == "off"
