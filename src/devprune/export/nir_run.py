"""Run a NIR graph and compare its spikes with the devprune model it was exported from.

``run_nirtorch`` builds the graph with ``nirtorch.nir_to_torch`` and a node map that follows
NIR's definitions literally (forward Euler at the graph's ``dt``; membranes start at 0), and
steps it over the time steps, one sample at a time (NIR shapes carry no batch dimension).
``run_snntorch`` does the same through snnTorch's own ``import_from_nir`` where installed.
``compare_spikes`` runs the devprune model on the same encoded input and counts equal spikes,
per neuron layer and at the output.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from devprune.errors import ConfigError
from devprune.export.nir_graph import ENCODERS, INSTALL_HINT
from devprune.snn.base import is_spiking_neuron

OUTPUT_RTOL = 1e-5  # a non-spiking readout's values: relative tolerance (at least 1e-5 abs)


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError(f"NIR verification needs the {name} package: {INSTALL_HINT}") from None


class EulerNeuron(nn.Module):
    """A NIR ``LIF`` or ``IF`` node integrated with forward Euler at step ``dt``.

    ``v <- v + dt/tau (v_leak - v) + dt r/tau I`` (IF: ``v <- v + dt r I``); ``z = 1[v > v_thr]``;
    ``v <- v_reset`` where ``z``. The two coefficients are computed in float64 once.
    """

    def __init__(self, node: Any, dt: float) -> None:
        super().__init__()
        r = np.asarray(node.r, dtype=np.float64)
        if hasattr(node, "tau"):
            tau = np.asarray(node.tau, dtype=np.float64)
            keep, gain = 1.0 - dt / tau, dt * r / tau
            rest = dt / tau * np.asarray(node.v_leak, dtype=np.float64)
        else:
            keep, gain, rest = np.ones_like(r), dt * r, np.zeros_like(r)

        def buffer(value: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(value, dtype=np.float32))

        self.register_buffer("keep", buffer(keep))
        self.register_buffer("gain", buffer(gain))
        self.register_buffer("rest", buffer(rest))
        self.register_buffer("v_threshold", buffer(node.v_threshold))
        self.register_buffer("v_reset", buffer(node.v_reset))
        self.has_rest = bool(np.any(rest))

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        v = torch.zeros_like(x) if state is None else state
        v = v * self.keep + x * self.gain
        if self.has_rest:
            v = v + self.rest
        z = (v > self.v_threshold).to(x.dtype)
        v = torch.where(z > 0, self.v_reset.expand_as(v), v)
        return z, v


def _affine(node: Any) -> nn.Linear:
    # nirtorch 2.6's default Affine map assigns the bias to ``weight.bias`` (the layer keeps
    # a random bias), so this map sets it properly
    layer = nn.Linear(node.weight.shape[1], node.weight.shape[0], bias=True)
    layer.weight.data = torch.as_tensor(np.asarray(node.weight, dtype=np.float32))
    layer.bias.data = torch.as_tensor(np.asarray(node.bias, dtype=np.float32))
    return layer


def _conv2d(node: Any) -> nn.Conv2d:
    weight = np.asarray(node.weight, dtype=np.float32)
    conv = nn.Conv2d(weight.shape[1] * int(node.groups), weight.shape[0], weight.shape[2:],
                     stride=tuple(int(s) for s in np.atleast_1d(node.stride)),
                     padding=tuple(int(p) for p in np.atleast_1d(node.padding)),
                     dilation=tuple(int(d) for d in np.atleast_1d(node.dilation)),
                     groups=int(node.groups), bias=True)
    conv.weight.data = torch.as_tensor(weight)
    conv.bias.data = torch.as_tensor(np.asarray(node.bias, dtype=np.float32))
    return conv


def nirtorch_module(graph: Any) -> nn.Module:
    """``nirtorch.nir_to_torch`` of ``graph`` with NIR's neuron equations at ``metadata['dt']``."""
    nir = _import("nir")
    nirtorch = _import("nirtorch")
    dt = float(graph.metadata.get("dt", 1e-4))
    node_map = {
        nir.LIF: lambda n: EulerNeuron(n, dt),
        nir.IF: lambda n: EulerNeuron(n, dt),
        nir.Affine: _affine,
        nir.Conv2d: _conv2d,
    }
    return nirtorch.nir_to_torch(graph, node_map)


def _sanitize(name: str) -> str:
    return name.replace(".", "_")


def _neuron_names(graph: Any) -> list[str]:
    nir = _import("nir")
    return [n for n, node in graph.nodes.items() if isinstance(node, (nir.LIF, nir.IF))]


def run_graph_module(module: nn.Module, graph: Any, frames: torch.Tensor
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Step a ``nir_to_torch`` module over ``frames`` ``[T, B, ...]`` one sample at a time
    (fresh state per sample; snnTorch neurons keeping hidden state are reset too).

    Returns the output ``[T, B, ...]`` and each neuron node's spikes ``[T, B, ...]``.
    """
    names = _neuron_names(graph)
    record: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    hooks = []
    for name in names:
        try:
            sub = module.get_submodule(_sanitize(name))
        except AttributeError:
            continue

        def hook(_m: nn.Module, _i: Any, out: Any, key: str = name) -> None:
            record[key].append((out[0] if isinstance(out, tuple) else out).detach())

        hooks.append(sub.register_forward_hook(hook))
    outputs = []
    try:
        with torch.no_grad():
            for b in range(frames.shape[1]):
                state = None
                _reset_snntorch(module)
                steps = []
                for t in range(frames.shape[0]):
                    out, state = module(frames[t, b], state)
                    steps.append(out)
                outputs.append(torch.stack(steps))
    finally:
        for h in hooks:
            h.remove()
    steps_per_sample = frames.shape[0]
    spikes = {}
    for name, seq in record.items():
        if len(seq) == steps_per_sample * frames.shape[1]:
            spikes[name] = torch.stack(seq).unflatten(0, (frames.shape[1], steps_per_sample)
                                                      ).transpose(0, 1)
    return torch.stack(outputs, 1), spikes


def _reset_snntorch(module: nn.Module) -> None:
    for m in module.modules():
        if hasattr(m, "reset_mem") and getattr(m, "init_hidden", False):
            m.reset_mem()


def devprune_spikes(model: nn.Module, example_input: Any, graph: Any, seed: int = 0
                    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Run the devprune model: (encoded input ``[T, B, ...]``, its output, neuron spikes)."""
    encoded: list[torch.Tensor] = []
    spikes: dict[str, torch.Tensor] = {}
    wanted = set(_neuron_names(graph))
    # a non-spiking readout layer, read after the BatchNorm folded into it if any
    readout = {str((graph.nodes[s].metadata or {}).get("folded_batch_norm", s)): s
               for s in _output_sources(graph) if s not in wanted}
    hooks = []
    for name, module in model.named_modules():
        if type(module) in ENCODERS:
            hooks.append(module.register_forward_hook(
                lambda _m, _i, out: encoded.append(out.detach())))
        elif (is_spiking_neuron(module) and name in wanted) or name in readout:
            key = readout.get(name, name)
            hooks.append(module.register_forward_hook(
                lambda _m, _i, out, key=key: spikes.__setitem__(key, out.detach())))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            output = model(example_input)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    if encoded:
        frames = encoded[0]
    elif str(graph.metadata.get("encoding")) == "direct":  # x.unsqueeze(0).repeat(T, ...)
        steps = int(graph.metadata["time_steps"])
        frames = example_input.unsqueeze(0).expand(steps, *example_input.shape)
    else:
        frames = example_input  # already time-major
    return frames, output.detach(), spikes


@dataclass
class Comparison:
    """Spike agreement between the devprune model and one NIR runtime."""

    runtime: str
    ran: bool
    error: str | None = None
    equal: int = 0
    total: int = 0
    output_equal: int = 0
    output_total: int = 0
    layers: dict[str, tuple[int, int]] = field(default_factory=dict)
    output_max_diff: float = 0.0  # for a non-spiking readout (values, not spikes)

    @property
    def agreement(self) -> float:
        return self.equal / self.total if self.total else float("nan")

    @property
    def exact(self) -> bool:
        return self.ran and self.equal == self.total and self.output_equal == self.output_total

    def line(self) -> str:
        if not self.ran:
            return f"{self.runtime}: not run ({self.error})"
        layers = ", ".join(f"{n} {e}/{t}" for n, (e, t) in self.layers.items())
        return (f"{self.runtime}: {self.equal}/{self.total} spikes equal "
                f"({100 * self.agreement:.4f}%) over {len(self.layers)} neuron layers; "
                f"output {self.output_equal}/{self.output_total}"
                + (f" (values within {OUTPUT_RTOL:g} relative, max |diff| "
                   f"{self.output_max_diff:.3g})" if self.output_max_diff else "")
                + (f" [{layers}]" if self.equal != self.total else ""))


def _compare(runtime: str, reference: dict[str, torch.Tensor], ref_out: torch.Tensor,
             spikes: dict[str, torch.Tensor], out: torch.Tensor) -> Comparison:
    result = Comparison(runtime, ran=True)
    for name, ref in reference.items():
        if not _is_spikes(ref):
            continue  # a non-spiking readout layer: compared as the output below
        got = spikes.get(name)
        if got is None or got.shape != ref.shape:
            continue
        eq = int((got == ref).sum())
        result.layers[name] = (eq, ref.numel())
        result.equal += eq
        result.total += ref.numel()
    out = out.reshape(ref_out.shape) if out.numel() == ref_out.numel() else out
    if out.shape == ref_out.shape:
        if _is_spikes(ref_out):
            result.output_equal = int((out == ref_out).sum())
        else:  # folded BatchNorm and summation order change float rounding of values
            diff = (out - ref_out).abs()
            result.output_max_diff = float(diff.max()) if diff.numel() else 0.0
            close = diff <= OUTPUT_RTOL * ref_out.abs().clamp_min(1.0)
            result.output_equal = int(close.sum())
    result.output_total = ref_out.numel()
    return result


def _is_spikes(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def compare_spikes(model: nn.Module, graph: Any, example_input: Any, *,
                   snntorch: bool = True) -> list[Comparison]:
    """Run ``graph`` with nirtorch (and snnTorch's importer where installed and asked for) on
    the devprune model's encoded ``example_input`` for its time steps; compare spikes."""
    if isinstance(example_input, torch.Tensor):  # NIR runtimes run here on the CPU
        example_input = example_input.cpu()
    frames, _, reference = devprune_spikes(copy.deepcopy(model).cpu(), example_input, graph)
    # the output node's spikes [T, B, ...]: the last neuron feeding the output
    ref_out = _output_spikes(graph, reference)
    results = []
    module = nirtorch_module(graph)
    out, spikes = run_graph_module(module, graph, frames)
    results.append(_compare("nirtorch", reference, ref_out, spikes, out))
    if snntorch:
        results.append(_snntorch_comparison(graph, frames, reference, ref_out))
    return results


def _output_sources(graph: Any) -> list[str]:
    return [src for src, dst in graph.edges if dst == "output"]


def _output_spikes(graph: Any, reference: dict[str, torch.Tensor]) -> torch.Tensor:
    """What the graph's output node receives, from the devprune run: [T, B, ...]."""
    sources = _output_sources(graph)
    parts = [reference[s] for s in sources if s in reference]
    if not parts or len(parts) != len(sources):
        raise ConfigError("NIR verification: the output node is fed by a node that is neither "
                          "a neuron nor a devprune layer")
    return torch.stack(parts).sum(0)


def _snntorch_comparison(graph: Any, frames: torch.Tensor, reference: dict[str, torch.Tensor],
                         ref_out: torch.Tensor) -> Comparison:
    try:
        import_nir = importlib.import_module("snntorch.import_nir")
    except ImportError:
        return Comparison("snntorch", ran=False, error="snntorch is not installed")
    dt = float(graph.metadata.get("dt", 1e-4))
    if not np.isclose(dt, 1e-4):
        return Comparison("snntorch", ran=False, error=f"its importer assumes dt=1e-4, the "
                          f"graph uses dt={dt:g}")
    nir = _import("nir")
    if any(isinstance(n, nir.IF) for n in graph.nodes.values()):
        return Comparison("snntorch", ran=False, error="snnTorch's importer maps nir.IF to a "
                          "leaky neuron (beta 0.9, r=1 only), so IF graphs cannot match")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its importer prints warnings
            module = import_nir.import_from_nir(_copy_graph(graph))
            out, spikes = run_graph_module(module, graph, frames)
    except Exception as err:
        return Comparison("snntorch", ran=False, error=f"{type(err).__name__}: {err}"[:200])
    return _compare("snntorch", reference, ref_out, spikes, out)


def _copy_graph(graph: Any) -> Any:
    nir = _import("nir")
    return nir.NIRGraph(nodes=dict(graph.nodes), edges=list(graph.edges),
                        metadata=dict(graph.metadata))
