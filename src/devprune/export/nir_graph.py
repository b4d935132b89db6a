"""Build a NIR graph (the neuromorphic intermediate representation) from a devprune SNN.

``to_nir(model, masks, example_input)`` compacts the model (dead units removed), folds every
BatchNorm into the conv/linear before it, and maps each remaining operation to a NIR
primitive. Anything NIR cannot express is refused with :class:`ModelStructureError` naming the
layer and what to change; nothing is approximated.

Neurons. NIR neurons are continuous-time; a runtime integrates them with forward Euler at its
step ``dt``. devprune's neurons are discrete (one update per time step). The values written
make the Euler step at ``dt`` reproduce devprune's update exactly:

===================  ===================================  ==================================
devprune neuron      per-step update                      NIR node (Euler at dt)
===================  ===================================  ==================================
``STBPLIF(decay)``   ``u = decay * u + x``                 ``LIF(tau = dt / (1 - decay),
                                                           r = 1 / (1 - decay))``
``LIF(tau)``         ``u = u + (x - u) / tau``             ``LIF(tau = dt * tau, r = 1)``
``PLIF(w)``          ``u = u + (x - u) * sigmoid(w)``      ``LIF(tau = dt / sigmoid(w), r=1)``
``IF``, STBP decay 1 ``u = u + x``                         ``IF(r = 1 / dt)``
===================  ===================================  ==================================

with ``v_leak = 0``, ``v_threshold = threshold``, ``v_reset = 0``: Euler gives
``v <- (1 - dt/tau) v + (dt r / tau) x``, fire where ``v > v_threshold``, then ``v <- v_reset``,
which is devprune's charge-fire-reset step. ``dt`` defaults to 1e-4, the step snnTorch's
``import_from_nir`` assumes; it is stored in the graph metadata.
"""

from __future__ import annotations

import copy
import importlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from devprune import __version__
from devprune.compact import compact
from devprune.errors import ConfigError, ModelStructureError
from devprune.kinds import (
    EVAL_IDENTITY_MODULES,
    MAX_POOLS,
    NORM_LAYERS,
    WEIGHT_LAYERS,
    avg_pool_dims,
)
from devprune.snn import layers as ms
from devprune.snn.base import is_spiking_neuron
from devprune.snn.encoders import BernoulliEncoder, DirectEncoder, EventFrameEncoder
from devprune.snn.layers import is_multi_step
from devprune.snn.neurons import IF, LIF, PLIF, STBPLIF
from devprune.structure import ADD_OPS, LeafTracer, discover

DEFAULT_DT = 1e-4
NEURON_TYPES = (STBPLIF, LIF, PLIF, IF)
ENCODERS = {DirectEncoder: "direct", BernoulliEncoder: "bernoulli",
            EventFrameEncoder: "event-frames"}
SPIKINGJELLY_NODES = ("LIFNode", "ParametricLIFNode", "IFNode")
INSTALL_HINT = "pip install 'devprune[export]' (nir and nirtorch)"


def import_nir() -> Any:
    """The ``nir`` package, or a one-line error telling how to install it."""
    try:
        return importlib.import_module("nir")
    except ImportError:
        raise ConfigError(f"NIR export needs the nir package: {INSTALL_HINT}") from None


@dataclass
class _Spec:
    """A NIR node under construction (weights stay torch tensors until the end)."""

    kind: str  # conv2d, affine, lif, if, avgpool2d, flatten
    module_name: str
    params: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)


class _Recorder(fx.Interpreter):
    """Run the traced graph once and keep each node's output shape."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.shapes: dict[str, tuple[int, ...]] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            self.shapes[n.name] = tuple(out.shape)
        return out


def _refuse(layer: str, what: str, fix: str) -> ModelStructureError:
    return ModelStructureError(f"NIR export: layer {layer} ({what}) {fix}")


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, ms.SeqToANN) else module


def neuron_parameters(name: str, neuron: nn.Module, dt: float) -> tuple[str, dict[str, float]]:
    """NIR node kind and scalar parameters reproducing ``neuron``'s step at Euler step ``dt``.

    Raises :class:`ModelStructureError` for neurons NIR cannot express.
    """
    if type(neuron).__name__ in SPIKINGJELLY_NODES and _from_spikingjelly(neuron):
        return _spikingjelly_parameters(name, neuron, dt)
    if not is_spiking_neuron(neuron) or type(neuron) not in NEURON_TYPES:
        raise _refuse(name, type(neuron).__name__,
                      "has no NIR mapping; use a devprune neuron (stbp-lif, lif, plif, if) or "
                      "a SpikingJelly LIFNode/ParametricLIFNode/IFNode")
    if neuron.reset_mode != "hard":
        raise _refuse(name, f"{type(neuron).__name__}, soft reset",
                      "subtracts the threshold on a spike, which NIR neurons cannot express "
                      "(they reset to v_reset); train it with reset='hard'")
    if neuron.v_reset != 0.0:
        raise _refuse(name, f"{type(neuron).__name__}, v_reset={neuron.v_reset}",
                      "starts and resets its membrane at a non-zero v_reset, but NIR runtimes "
                      "start membranes at 0; train it with v_reset=0")
    base = {"v_threshold": float(neuron.threshold), "v_reset": 0.0}
    if isinstance(neuron, IF) or (isinstance(neuron, STBPLIF) and neuron.decay == 1.0):
        return "if", {**base, "r": 1.0 / dt}
    if isinstance(neuron, STBPLIF):
        leak = 1.0 - neuron.decay  # dt / tau
        return "lif", {**base, "tau": dt / leak, "r": 1.0 / leak, "v_leak": 0.0}
    if isinstance(neuron, LIF):
        return "lif", {**base, "tau": dt * neuron.tau, "r": 1.0, "v_leak": 0.0}
    leak = float(torch.sigmoid(neuron.w.detach().float()))  # the float32 value PLIF uses
    return "lif", {**base, "tau": dt / leak, "r": 1.0, "v_leak": 0.0}


def _from_spikingjelly(module: nn.Module) -> bool:
    return any(c.__module__.startswith("spikingjelly.") for c in type(module).__mro__)


def _below(threshold: float) -> float:
    """The largest float32 below ``threshold``: ``v > it`` is ``v >= threshold`` in float32."""
    return float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))


def _spikingjelly_parameters(name: str, node: nn.Module, dt: float
                             ) -> tuple[str, dict[str, float]]:
    """SpikingJelly's LIFNode / ParametricLIFNode / IFNode (hard reset to 0).

    Charge ``H = V + (X - V) / tau`` (``decay_input``) or ``H = V - V / tau + X``; fire where
    ``H >= v_threshold``; ``V = v_reset`` where fired. NIR fires where ``v > v_threshold``, so
    the file holds the largest float32 below SpikingJelly's threshold (the same test in
    float32).
    """
    cls = type(node).__name__
    if node.v_reset is None:
        raise _refuse(name, f"{cls}, soft reset (v_reset=None)",
                      "subtracts the threshold on a spike, which NIR neurons cannot express; "
                      "train it with v_reset=0.0")
    if float(node.v_reset) != 0.0:
        raise _refuse(name, f"{cls}, v_reset={node.v_reset}", "resets to a non-zero potential "
                      "while NIR runtimes start membranes at 0; train it with v_reset=0.0")
    if not isinstance(node.v_threshold, (int, float)):
        raise _refuse(name, cls, "has a tensor threshold; NIR export supports a scalar one")
    base = {"v_threshold": _below(float(node.v_threshold)), "v_reset": 0.0}
    if cls == "IFNode":
        return "if", {**base, "r": 1.0 / dt}
    if cls == "ParametricLIFNode":
        leak = float(torch.sigmoid(node.w.detach().float()))
    else:
        leak = 1.0 / float(node.tau)
    gain = leak if getattr(node, "decay_input", True) else 1.0  # dt r / tau
    return "lif", {**base, "tau": dt / leak, "r": gain / leak, "v_leak": 0.0}


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


class _Builder:
    def __init__(self, model: nn.Module, example_input: Any, dt: float,
                 before: dict[str, nn.Module]) -> None:
        self.model = model
        self.dt = float(dt)
        self.before = before  # weight layers of the uncompacted model, for metadata
        try:
            self.gm = fx.GraphModule(model, LeafTracer().trace(model))
        except Exception as err:
            raise ModelStructureError(
                f"NIR export: torch.fx cannot trace {type(model).__name__} "
                f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); NIR export "
                "needs a forward without data-dependent Python control flow"
            ) from None
        self.modules = dict(self.gm.named_modules())
        recorder = _Recorder(self.gm)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            recorder.run(example_input)
        self.shapes = recorder.shapes
        self.specs: dict[str, _Spec] = {}
        self.edges: list[tuple[str, str]] = []
        self.values: dict[str, list[str]] = {}  # fx node -> NIR nodes whose outputs it sums
        self.metadata: dict[str, Any] = {}
        self.time_steps: int | None = None
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None
        self.called: set[str] = set()

    # -- helpers ---------------------------------------------------------------------------
    def step_shape(self, node: fx.Node) -> tuple[int, ...]:
        shape = self.shapes.get(node.name)
        if shape is None or len(shape) < 2 or shape[0] != self.time_steps:
            raise _refuse(node.name, f"output shape {shape}",
                          f"is not time-major [T={self.time_steps}, B, ...]; NIR export needs "
                          "multi-step layers (devprune.snn.layers)")
        return shape[2:]

    def inputs_of(self, node: fx.Node) -> list[str]:
        tensors = [a for a in node.args if isinstance(a, fx.Node)]
        if len(tensors) != 1:
            raise _refuse(node.name, str(node.target), "takes several inputs; NIR export "
                          "supports one input per layer (adds become several incoming edges)")
        return self.values[tensors[0].name]

    def add(self, node: fx.Node, spec: _Spec) -> None:
        name = spec.module_name
        for src in self.inputs_of(node):
            self.edges.append((src, name))
        self.specs[name] = spec
        self.values[node.name] = [name]

    # -- the walk --------------------------------------------------------------------------
    def build(self) -> None:
        nodes = list(self.gm.graph.nodes)
        placeholders = [n for n in nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise ModelStructureError("NIR export: the model must take exactly one input tensor")
        for node in nodes:
            if node.op == "placeholder":
                self._placeholder(node, nodes)
            elif node.op == "call_module":
                self._module(node)
            elif node.op in ("call_function", "call_method"):
                self._function(node)
            elif node.op == "output":
                self._output(node)
            else:
                raise _refuse(node.name, node.op, "has no NIR equivalent")

    def _placeholder(self, node: fx.Node, nodes: list[fx.Node]) -> None:
        users = list(node.users)
        first = users[0] if len(users) == 1 else None
        module = self.modules.get(first.target) if first is not None and \
            first.op == "call_module" else None
        if module is not None and type(module) in ENCODERS:
            shape = self.shapes[first.name]
            self.time_steps = int(shape[0])
            self.input_shape = shape[2:]
            self.metadata["encoding"] = ENCODERS[type(module)]
            crop = getattr(module, "crop", None)
            if crop is not None:
                self.metadata["encoding_crop"] = np.array(crop, dtype=np.int64)
            self.values[node.name] = []
            self.values[first.name] = ["input"]
            self.called.add(first.name)
            return
        repeat = self._repeat_encoding(node)
        if repeat is not None:  # x.unsqueeze(0).repeat(T, 1, ...): direct encoding
            shape = self.shapes[repeat.name]
            self.time_steps, self.input_shape = int(shape[0]), shape[2:]
            self.metadata["encoding"] = "direct"
            self.values[node.name] = []
            self.values[repeat.name] = ["input"]
            return
        shape = self.shapes[node.name]
        self.time_steps = int(shape[0])
        self.input_shape = shape[2:]
        self.metadata["encoding"] = "none: the model input is time-major [T, B, ...]"
        self.values[node.name] = ["input"]

    def _repeat_encoding(self, node: fx.Node) -> fx.Node | None:
        """The ``repeat`` node of ``x.unsqueeze(0).repeat(T, 1, ...)`` right after the input
        (the SpikingJelly idiom for direct encoding), else None."""
        users = list(node.users)
        if len(users) != 1 or users[0].op != "call_method" or users[0].target != "unsqueeze":
            return None
        unsqueeze = users[0]
        dim = unsqueeze.args[1] if len(unsqueeze.args) > 1 else unsqueeze.kwargs.get("dim")
        after = list(unsqueeze.users)
        if dim != 0 or len(after) != 1 or after[0].op != "call_method" or \
                after[0].target not in ("repeat", "expand"):
            return None
        repeat = after[0]
        sizes = repeat.args[1:]
        if not sizes or not all(isinstance(v, int) for v in sizes) or \
                any(v not in (1, -1) for v in sizes[1:]):
            return None
        self.called.update({unsqueeze.name, repeat.name})
        return repeat

    def _module(self, node: fx.Node) -> None:
        if node.name in self.called:  # the encoder, handled with the placeholder
            return
        name = str(node.target)
        module = _unwrap(self.modules[name])
        if name in self.specs:
            raise _refuse(name, type(module).__name__, "is called more than once; NIR export "
                          "needs one call per module")
        if is_spiking_neuron(module):
            kind, params = neuron_parameters(name, module, self.dt)
            shape = self.step_shape(node)
            meta = {"devprune_class": type(module).__name__}
            surrogate = getattr(module, "surrogate", getattr(module, "surrogate_function", None))
            if surrogate is not None:  # shapes gradients only; recorded, not needed to run
                meta["surrogate_not_exported"] = repr(surrogate)[:200]
            self.add(node, _Spec(kind, name, {**params, "shape": shape}, meta))
        elif isinstance(module, nn.Conv2d):
            self._conv(node, name, module)
        elif isinstance(module, nn.Linear):
            self._linear(node, name, module)
        elif isinstance(module, NORM_LAYERS):
            self._fold_norm(node, name, module)
        elif avg_pool_dims(module) == 2:
            self._avg_pool(node, name, module)
        elif isinstance(module, nn.Flatten):
            self._flatten(node, name, module)
        elif isinstance(module, EVAL_IDENTITY_MODULES):
            self.values[node.name] = self.inputs_of(node)  # identity in eval mode
        elif isinstance(module, MAX_POOLS):
            raise _refuse(name, type(module).__name__,
                          "is max pooling, which NIR has no node for; replace it with "
                          "AvgPool2d (or a strided conv) and retrain")
        elif type(module) in ENCODERS:
            raise _refuse(name, type(module).__name__, "is an encoder that is not the "
                          "model's first operation; NIR export needs the encoder first")
        else:
            raise _refuse(name, type(module).__name__,
                          "has no NIR equivalent; NIR export supports conv2d, linear, "
                          "batch norm after them, average pooling, flatten, dropout, residual "
                          "adds and devprune neurons")

    def _weight_metadata(self, name: str, weight: torch.Tensor) -> dict[str, Any]:
        kept = int(torch.count_nonzero(weight))
        total = weight.numel()
        dense = self.before.get(name)
        dense_total = dense.weight.numel() if dense is not None else total
        dense_units = dense.weight.shape[0] if dense is not None else weight.shape[0]
        return {
            "devprune_name": name,
            "synapses": kept,
            "synapses_total": total,
            "connectivity": kept / total if total else 0.0,
            "units": int(weight.shape[0]),
            "units_dense": int(dense_units),
            "synapses_dense_total": int(dense_total),
            "connectivity_dense": kept / dense_total if dense_total else 0.0,
        }

    def _conv(self, node: fx.Node, name: str, conv: nn.Conv2d) -> None:
        if conv.padding_mode != "zeros":
            raise _refuse(name, f"Conv2d padding_mode={conv.padding_mode!r}",
                          "pads with something other than zeros, which NIR cannot express; "
                          "use padding_mode='zeros'")
        if isinstance(conv.padding, str):
            if conv.padding != "valid":
                raise _refuse(name, f"Conv2d padding={conv.padding!r}",
                              "uses string padding; give the padding as integers")
            padding = (0, 0)
        else:
            padding = _pair(conv.padding)
        in_shape = self.shapes[node.args[0].name] if isinstance(node.args[0], fx.Node) else None
        weight = conv.weight.detach().double()
        bias = conv.bias.detach().double() if conv.bias is not None else \
            torch.zeros(weight.shape[0], dtype=torch.float64)
        self.step_shape(node)
        self.add(node, _Spec("conv2d", name, {
            "weight": weight, "bias": bias, "stride": _pair(conv.stride), "padding": padding,
            "dilation": _pair(conv.dilation), "groups": int(conv.groups),
            "input_shape": tuple(in_shape[-2:]) if in_shape else None,
        }, self._weight_metadata(name, conv.weight.detach())))

    def _linear(self, node: fx.Node, name: str, linear: nn.Linear) -> None:
        shape = self.step_shape(node)
        if len(shape) != 1:
            raise _refuse(name, f"Linear on per-step shape {shape}", "is applied to more than "
                          "one dim per step; flatten its input first")
        weight = linear.weight.detach().double()
        bias = linear.bias.detach().double() if linear.bias is not None else None
        self.add(node, _Spec("affine", name, {"weight": weight, "bias": bias},
                             self._weight_metadata(name, linear.weight.detach())))

    def _fold_norm(self, node: fx.Node, name: str, norm: nn.Module) -> None:
        source = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
        producers = self.values.get(source.name, []) if source is not None else []
        spec = self.specs.get(producers[0]) if len(producers) == 1 else None
        if (spec is None or spec.kind not in ("conv2d", "affine") or len(source.users) != 1
                or source.op != "call_module"):
            raise _refuse(name, type(norm).__name__, "does not directly follow a single "
                          "conv/linear layer, so it cannot be folded and NIR has no batch "
                          "norm; place it right after a conv or linear")
        if not norm.track_running_stats or norm.running_mean is None:
            raise _refuse(name, type(norm).__name__, "normalises with batch statistics at "
                          "inference (track_running_stats=False), which NIR cannot express")
        var = norm.running_var.detach().double()
        scale = torch.rsqrt(var + norm.eps)
        shift = -norm.running_mean.detach().double() * scale
        if norm.affine:
            gamma = norm.weight.detach().double()
            shift = shift * gamma + norm.bias.detach().double()
            scale = scale * gamma
        weight, bias = spec.params["weight"], spec.params["bias"]
        if bias is None:
            bias = torch.zeros(weight.shape[0], dtype=torch.float64)
        view = (-1,) + (1,) * (weight.dim() - 1)
        spec.params["weight"] = weight * scale.view(view)
        spec.params["bias"] = bias * scale + shift
        spec.metadata["folded_batch_norm"] = name
        self.values[node.name] = producers

    def _avg_pool(self, node: fx.Node, name: str, pool: nn.Module) -> None:
        in_shape = self.shapes[node.args[0].name][-2:]
        if isinstance(pool, nn.AdaptiveAvgPool2d):
            out = pool.output_size
            out = (out, out) if isinstance(out, int) else tuple(out)
            out = tuple(in_shape[i] if o is None else int(o) for i, o in enumerate(out))
            if any(h % o for h, o in zip(in_shape, out, strict=True)):
                raise _refuse(name, f"AdaptiveAvgPool2d {in_shape}->{out}", "has unequal "
                              "windows; NIR's AvgPool2d needs input sizes divisible by the "
                              "output size")
            kernel = tuple(h // o for h, o in zip(in_shape, out, strict=True))
            stride, padding = kernel, (0, 0)
        else:
            if pool.ceil_mode or pool.divisor_override is not None:
                raise _refuse(name, "AvgPool2d with ceil_mode/divisor_override",
                              "has no NIR equivalent; use the defaults")
            kernel = _pair(pool.kernel_size)
            stride = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
            padding = _pair(pool.padding)
            if padding != (0, 0) and not pool.count_include_pad:
                raise _refuse(name, "AvgPool2d count_include_pad=False",
                              "has no NIR equivalent; use count_include_pad=True or no padding")
        self.step_shape(node)
        self.add(node, _Spec("avgpool2d", name,
                             {"kernel_size": kernel, "stride": stride, "padding": padding}))

    def _flatten(self, node: fx.Node, name: str, flatten: nn.Flatten) -> None:
        in_shape = self.shapes[node.args[0].name][2:]
        # devprune's Flatten counts dims per step [B, ...]; a plain nn.Flatten would get the
        # time-major tensor and has been refused by step_shape below if it mixed T and B
        start, end = flatten.start_dim, flatten.end_dim
        # SpikingJelly's multi-step Flatten folds T into the batch, as devprune's does
        if not isinstance(flatten, ms.Flatten) and not is_multi_step(flatten):
            raise _refuse(name, "torch.nn.Flatten on [T, B, ...]", "would mix time and "
                          "batch; use devprune.snn.layers.Flatten")
        start = start - 1 if start > 0 else start + len(in_shape) + 1
        end = end - 1 if end > 0 else end
        if start != 0 or end != -1:
            raise _refuse(name, f"Flatten(start_dim={flatten.start_dim}, "
                          f"end_dim={flatten.end_dim})", "does not flatten a whole step; "
                          "NIR export supports a full per-step flatten")
        self.step_shape(node)
        self.add(node, _Spec("flatten", name, {"input_type": tuple(in_shape),
                                               "start_dim": 0, "end_dim": -1}))

    def _function(self, node: fx.Node) -> None:
        if node.name in self.called:  # the direct-encoding repeat, handled with the input
            return
        if node.op == "call_function" and node.target in ADD_OPS:
            tensors = [a for a in node.args if isinstance(a, fx.Node)]
            if len(tensors) != 2 or node.kwargs:
                raise _refuse(node.name, "add", "adds a constant or scales a branch, which "
                              "NIR edges cannot express; add two tensors only")
            summed = self.values[tensors[0].name] + self.values[tensors[1].name]
            if len(set(summed)) != len(summed):
                raise _refuse(node.name, "add", "adds a tensor to itself; NIR edges cannot "
                              "express a doubled input")
            self.values[node.name] = summed
            return
        if self._is_time_reduction(node):
            self.values[node.name] = self.values[node.args[0].name]
            return
        raise _refuse(node.name, str(getattr(node.target, "__name__", node.target)),
                      "is a function call with no NIR equivalent; NIR export supports "
                      "residual adds and a final mean over time")

    @staticmethod
    def _is_time_reduction(node: fx.Node) -> bool:
        is_mean = (node.op == "call_method" and node.target in ("mean", "sum")) or \
            (node.op == "call_function" and node.target in (torch.mean, torch.sum))
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        users = list(node.users)
        return is_mean and dim == 0 and len(users) == 1 and users[0].op == "output"

    def _output(self, node: fx.Node) -> None:
        result = node.args[0]
        if not isinstance(result, fx.Node):
            raise ModelStructureError("NIR export: the model must return one tensor")
        source = result.args[0] if result.op in ("call_method", "call_function") and \
            self._is_time_reduction(result) else result
        self.output_shape = self.step_shape(source)
        self.output_sources = self.values[source.name]
        spiking = all(self.specs[s].kind in ("lif", "if") for s in self.output_sources
                      if s in self.specs) and "input" not in self.output_sources
        what = "spikes" if spiking else "values (a non-spiking readout)"
        if source is result:
            self.metadata["readout"] = f"the output node's {what} at every step [T, ...]"
        else:
            reduce = result.target if isinstance(result.target, str) else result.target.__name__
            self.metadata["readout"] = f"{reduce} over time of the output node's {what}"


def _finish_node(nir: Any, spec: _Spec) -> Any:
    p, meta = spec.params, spec.metadata

    def arr(value: Any) -> np.ndarray:
        return np.asarray(value.numpy() if isinstance(value, torch.Tensor) else value,
                          dtype=np.float32)

    if spec.kind == "conv2d":
        return nir.Conv2d(input_shape=p["input_shape"], weight=arr(p["weight"]),
                          stride=p["stride"], padding=p["padding"], dilation=p["dilation"],
                          groups=p["groups"], bias=arr(p["bias"]), metadata=meta)
    if spec.kind == "affine":
        if p["bias"] is None:
            return nir.Linear(weight=arr(p["weight"]), metadata=meta)
        return nir.Affine(weight=arr(p["weight"]), bias=arr(p["bias"]), metadata=meta)
    if spec.kind in ("lif", "if"):
        shape = p["shape"]

        def full(key: str) -> np.ndarray:
            return np.full(shape, p[key], dtype=np.float32)

        if spec.kind == "if":
            return nir.IF(r=full("r"), v_threshold=full("v_threshold"),
                          v_reset=full("v_reset"), metadata=meta)
        return nir.LIF(tau=full("tau"), r=full("r"), v_leak=full("v_leak"),
                       v_threshold=full("v_threshold"), v_reset=full("v_reset"), metadata=meta)
    if spec.kind == "avgpool2d":
        return nir.AvgPool2d(kernel_size=np.array(p["kernel_size"]),
                             stride=np.array(p["stride"]), padding=np.array(p["padding"]))
    if spec.kind == "flatten":
        return nir.Flatten(input_type={"input": np.array(p["input_type"])},
                           start_dim=p["start_dim"], end_dim=p["end_dim"], metadata=meta)
    raise AssertionError(spec.kind)  # pragma: no cover


def _check_time_steps_match(model: nn.Module, steps: int) -> None:
    declared = getattr(model, "time_steps", None)
    if isinstance(declared, int) and declared != steps:  # pragma: no cover - defensive
        raise ModelStructureError(f"NIR export: the model declares {declared} time steps but "
                                  f"ran {steps}")


def _refuse_recurrence(model: nn.Module, example_input: Any) -> None:
    """NIR graphs here are feed-forward: name a recurrent weight (snnTorch RLeaky, a plain
    recurrence) instead of failing later on the Python time loop around it."""
    try:
        structure = discover(model, example_input)
    except ModelStructureError:
        return  # the builder names what it cannot export
    recurrent = [layer.name for layer in structure.layers if layer.recurrent_of]
    if recurrent:
        raise ModelStructureError(
            f"NIR export: recurrent weight(s) {recurrent} (docs/RECURRENT.md) are not "
            "supported; devprune exports feed-forward SNNs (compact the model with "
            "`devprune compact` or devprune.compact to deploy it in PyTorch)")


def build_nir_graph(model: nn.Module, example_input: Any, *, dt: float = DEFAULT_DT,
                    before: dict[str, nn.Module] | None = None,
                    metadata: dict[str, Any] | None = None) -> Any:
    """The NIR graph of an already compacted (or dense) devprune SNN; see :func:`to_nir`."""
    nir = import_nir()
    if not (dt > 0 and math.isfinite(dt)):
        raise ConfigError(f"NIR export: dt must be a positive number, got {dt!r}")
    model = copy.deepcopy(model).cpu().eval()  # NIR holds numpy arrays: work on the CPU
    for module in model.modules():  # SpikingJelly nodes keep state between calls
        if _from_spikingjelly(module) and callable(getattr(module, "reset", None)):
            module.reset()
    if isinstance(example_input, torch.Tensor):
        example_input = example_input.cpu()
    if not any(is_spiking_neuron(m) for m in model.modules()):
        raise ModelStructureError(
            f"NIR export: {type(model).__name__} has no spiking neurons; NIR export is for "
            "SNNs (export ANNs with torch.onnx or torch.export)")
    _refuse_recurrence(model, example_input)
    builder = _Builder(model, example_input, dt, before or {})
    builder.build()
    _check_time_steps_match(model, builder.time_steps)
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(
        builder.input_shape)})}
    for name, spec in builder.specs.items():
        nodes[name] = _finish_node(nir, spec)
    nodes["output"] = nir.Output(output_type={"output": np.array(builder.output_shape)})
    edges = list(builder.edges) + [(src, "output") for src in builder.output_sources]
    graph_meta: dict[str, Any] = {
        "source": f"devprune {__version__}",
        "time_steps": int(builder.time_steps),
        "dt": float(dt),
        "neuron_discretisation": "forward Euler at dt reproduces the source model's per-step "
                                 "update exactly; membranes start at 0",
        **builder.metadata,
        **(metadata or {}),
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=graph_meta)


def to_nir(model: nn.Module, masks: Any, example_input: Any, *, dt: float = DEFAULT_DT,
           metadata: dict[str, Any] | None = None) -> Any:
    """A ``nir.NIRGraph`` of ``model`` with ``masks`` (a MaskSet or None for a dense model).

    The model is compacted first (``devprune.compact.compact``, verified on
    ``example_input``), BatchNorms are folded into the conv/linear before them, and every
    node carries metadata: weight nodes their connectivity (``synapses``, ``synapses_total``,
    ``connectivity``, the same relative to the uncompacted layer, ``units`` and
    ``units_dense``), the graph ``time_steps``, ``dt``, ``encoding`` and ``readout``.
    ``metadata`` entries are added to the graph's. Unsupported layers raise
    :class:`ModelStructureError` naming the layer.
    """
    import_nir()
    before = {n: m for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)}
    small = compact(model, masks, example_input) if masks is not None else model
    return build_nir_graph(small, example_input, dt=dt, before=before, metadata=metadata)
