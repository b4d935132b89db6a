"""The LIF loop over T as one compiled CPU kernel (``csrc/lif.cpp``), optional.

The per-step torch loops (:meth:`~devprune.snn.neurons.MembraneNeuron.run_inference` and
:mod:`devprune.snn.fused`) launch three to eight kernels per time step and layer, each a pass
over the layer's whole ``[B, ...]`` state: on small (compacted) layers their fixed costs
dominate, on large ones the memory traffic. The kernel keeps a block of neurons in cache
over all T steps and runs the very same float operations in the same order, so spikes,
saved membranes and input gradients keep their bits (tested against the torch loops).

It is built on first use with PyTorch's C++ extension loader (a C++ compiler and ninja;
about 40 s once, announced on stderr), for this CPU (``-march=native``), into
``$DEVPRUNE_NATIVE_CACHE`` or ``~/.cache/devprune/native``, one folder per source, flags,
CPU model and torch version. Before first use
it is checked against the torch loops on a probe with values at the threshold and at the
surrogate window's edges; any difference (e.g. a CPU whose ATen ``add`` does not fuse the
multiply-add) turns it off with a warning. ``DEVPRUNE_NATIVE=0`` turns it off; without a
compiler everything runs the torch loops, with the same results.

Scope: CPU, float32/float64, a hard reset to 0; the STBP LIF (``add`` charge) and the
BrainCog LIF (``lerp``). The backward covers the rectangular surrogate (the STBP default)
and QGate (the BrainCog default); Sigmoid keeps devprune.snn.fused's torch backward (its
``exp`` would not round as torch's does).
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import torch

from devprune.snn.surrogate import SurrogateGrad, qgate_grad, rectangular_grad
from devprune.utils.cache import cache_dir

if TYPE_CHECKING:  # fused imports this module
    from devprune.snn.fused import Charge

SOURCE = Path(__file__).with_name("csrc") / "lif.cpp"
CHARGE_KINDS = {"add": 0, "lerp": 1}  # the kernel's codes for devprune.snn.fused.Charge
# contraction off: only the kernel's explicit fma fuses (as ATen's vectorised add does)
CFLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-std=c++17")
ENV_SWITCH = "DEVPRUNE_NATIVE"
ENV_CACHE = "DEVPRUNE_NATIVE_CACHE"


def supports(x: torch.Tensor) -> bool:
    """Whether the kernel may run on ``x`` (and is built and checked). Never while tracing
    or compiling: a tracer sees no torch op in the kernel and would record none."""
    return (not torch.jit.is_tracing() and not torch.compiler.is_compiling()
            and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            and x.dim() >= 1 and x.shape[0] > 0 and x.numel() > 0
            and kernels() is not None)


def forward(x: torch.Tensor, charge: Charge, threshold: float,
            keep_charged: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Spikes ``[T, ...]`` of a LIF with ``charge`` and a hard reset to 0 for currents ``x``
    (and the charged membranes when ``keep_charged``), as the torch loop computes them;
    ``threshold`` is rounded to ``x``'s dtype as torch rounds it. Call only where
    :func:`supports`."""
    out = kernels().lif_forward(x, CHARGE_KINDS[charge.kind], charge.factor, threshold,
                                keep_charged)
    return out[0], out[1] if keep_charged else None


def has_backward(surrogate_grad: SurrogateGrad) -> bool:
    """Whether the kernel computes this surrogate's backward (rectangular and QGate; the
    others, e.g. Sigmoid's ``exp``, would not round as torch does)."""
    return surrogate_grad is rectangular_grad or surrogate_grad is qgate_grad


def backward(grad_spikes: torch.Tensor, charged: torch.Tensor, spikes: torch.Tensor,
             charge: Charge, threshold: float, surrogate_grad: SurrogateGrad,
             parameter: float, detach_reset: bool,
             module: ModuleType | None = None) -> torch.Tensor:
    """The inputs' gradient of :func:`forward` (saved ``charged`` membranes and ``spikes``)
    as devprune.snn.fused's torch backward computes it. Call only where :func:`supports`
    and :func:`has_backward` (``module``: the extension, for its check before use)."""
    if surrogate_grad is rectangular_grad:
        code, p1, p2 = 0, parameter, 0.5 / parameter  # half width, height
    else:
        code, p1, p2 = 1, parameter, parameter * parameter  # alpha, alpha^2
    input_factor = charge.input_factor()
    return (module or kernels()).lif_backward(
        grad_spikes, charged, spikes, CHARGE_KINDS[charge.kind], charge.membrane_factor(),
        1.0 if input_factor is None else input_factor, threshold, code, p1, p2, detach_reset)


def status() -> str:
    """What this process did with the kernel, without building it: ``active`` (built,
    checked, used where it applies), ``off`` (switched off, or its build or check failed:
    the torch loops ran) or ``unused`` (no LIF ran on the CPU)."""
    if kernels.cache_info().currsize == 0:
        return "unused"
    return "active" if kernels() is not None else "off"


@cache
def kernels() -> ModuleType | None:
    """The built and checked extension, or None (switched off, no compiler, or a check
    failed: the torch loops run instead)."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    try:
        module = _build()
    except Exception as error:  # no compiler / ninja / headers: the torch loops stay
        warnings.warn(f"devprune: the native LIF kernel could not be built ({error}); "
                      f"using the torch loops (same results, slower). Set {ENV_SWITCH}=0 to "
                      "skip the attempt.", RuntimeWarning, stacklevel=2)
        return None
    mismatch = _self_check(module)
    if mismatch:
        warnings.warn(f"devprune: the native LIF kernel differs from the torch loop "
                      f"({mismatch}); using the torch loops.", RuntimeWarning, stacklevel=2)
        return None
    return module


def _build() -> ModuleType:
    name = f"devprune_lif_{_build_key()}"
    folder = cache_dir("native", ENV_CACHE) / name
    folder.mkdir(parents=True, exist_ok=True)
    with _exclusive(folder / "devprune.lock"):
        # torch's own lock file, left behind by a build that was killed, would make its
        # loader wait forever; while we hold ours, no other devprune process is building
        (folder / "lock").unlink(missing_ok=True)
        try:
            return _load(name, folder)
        except ImportError:  # a library left half-written by a killed build: build anew
            for library in folder.glob(f"{name}*.so"):
                library.unlink()
            return _load(name, folder)


def _load(name: str, folder: Path) -> ModuleType:
    from torch.utils.cpp_extension import load

    if not any(folder.glob(f"{name}*.so")):
        print(f"devprune: building the native LIF kernel in {folder} (once, ~40 s; "
              f"{ENV_SWITCH}=0 skips it)", file=sys.stderr, flush=True)
    return load(name=name, sources=[str(SOURCE)], extra_cflags=list(CFLAGS),
                build_directory=str(folder), verbose=False)


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``: processes building at once take turns, and the
    lock dies with its process (a killed build leaves nothing that blocks the next)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: torch's own lock file only
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_key() -> str:
    """Source, flags, CPU model and torch version: a build never runs on another CPU."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((line for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    key = SOURCE.read_bytes() + repr((CFLAGS, cpu, torch.__version__)).encode()
    return hashlib.sha256(key).hexdigest()[:12]


def _self_check(module: ModuleType) -> str:
    """Compare the kernel with the torch loops on a probe; '' when every bit agrees. The
    probe's rows (67 values) end off the vector width, and the lerp weights 1/3 and 2/3
    round in both of lerp's forms."""
    from devprune.snn.fused import Charge, torch_backward, torch_forward

    generator = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(5, 3, 67, generator=generator, dtype=dtype)
        x[:, 0, :8] = torch.tensor([0.5, 0.0, -0.0, 1.0, 0.25, 0.75, 0.4, 0.6], dtype=dtype)
        grad = torch.randn(x.shape, generator=generator, dtype=dtype)
        threshold = torch.tensor(0.5, dtype=dtype)
        for charge in (Charge("lerp", 1 / 3), Charge("lerp", 2 / 3), Charge("add", 0.2)):
            spikes, charged = module.lif_forward(x, CHARGE_KINDS[charge.kind], charge.factor,
                                                 0.5, True)
            want_charged, want_spikes = torch_forward(x, charge, threshold)
            if not (torch.equal(spikes, want_spikes) and torch.equal(charged, want_charged)):
                return f"forward, {charge}, {dtype}"
        for charge, surrogate_grad, parameter in ((Charge("add", 0.2), rectangular_grad, 0.5),
                                                  (Charge("lerp", 1 / 3), qgate_grad, 2.0)):
            charged, spikes = torch_forward(x, charge, threshold)
            for detach in (False, True):
                got = backward(grad, charged, spikes, charge, 0.5, surrogate_grad, parameter,
                               detach, module)
                want = torch_backward(grad, charged, spikes, charge, threshold, surrogate_grad,
                                      parameter, detach)
                if not torch.equal(got, want):
                    return f"backward, {charge}, {dtype}, detach_reset={detach}"
    return ""
