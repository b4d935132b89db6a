"""Discovery of a model's prunable structure: the dependency graph the pruners, measurement
and compaction share.

For every weight layer (``nn.Conv1d``/``nn.Conv2d``/``nn.Linear``, multi-step subclasses
included) it finds

* the module whose output is the layer's *postsynaptic activity* (the spiking neuron or the
  activation that follows it, through BN, pooling and dropout),
* the batch-norm coupled to its output units (their affine and running statistics move with
  the unit),
* its *producers*: the weight layers whose units feed its input columns, with the number of
  columns per producer unit (``block``: 1 for conv->conv, ``H*W`` through a flatten),
* *residual groups*: layers whose output channels are added together, so a channel can only
  be removed from all of them at once; a group that reaches the model input is ``fixed``.

*Recurrent weights* are layers too (``PrunableLayer.recurrent_of``, docs/RECURRENT.md): the
``recurrent`` weight inside an snnTorch ``RLeaky``/``RSynaptic``, and an ``nn.Linear`` /
``nn.Conv`` whose input is the previous step's spikes of the very neurons it feeds (a
recurrence written in plain PyTorch). Its rows and its columns are the units of the
feed-forward layer it joins: it is one of its own producers, and it shares a residual group
with that layer (its output is added to the same neurons' input current), so every rule for
producers and residual groups (masks, measurement, compaction, DPAP's unit groups) applies to
it unchanged. Recurrent layers devprune does not model (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``
and their cells) are refused by name.

It traces the model with ``torch.fx`` (child-less modules, neurons and multi-step layers are
leaves, so neuron internals and time loops inside them are never traced). Models whose
``forward`` cannot be traced (data-dependent Python control flow) fall back to the execution
order seen by forward hooks on an example input, assuming a chain; the result says which
method was used (``exact``). The fallback refuses a model with feedback it cannot place (a
weight layer fed by its own output or by a module that runs after it): it never guesses a
chain through a recurrence.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from devprune.errors import ModelStructureError

# the layer kinds live in one table (devprune.kinds); the names stay importable from here
from devprune.kinds import (
    ACTIVATION_FUNCTIONS,
    ACTIVATION_METHODS,
    NORM_LAYERS,
    RECURRENT_CHILD,
    RECURRENT_NEURONS,
    WEIGHT_LAYERS,
    is_spiking_neuron,
    is_unsupported_recurrent,
    layer_kind,
    unit_counts,
)
from devprune.kinds import is_activation as is_activation_module
from devprune.snn.layers import is_multi_step

ADD_OPS = {operator.add, operator.iadd, torch.add}
CONCAT_OPS = {torch.cat, torch.concat, torch.stack}
# Calls whose result depends on their tensor argument's shape only (``x.new_zeros(x.shape[0],
# n)``, the usual initial state of a recurrence): the walk back to producers stops there.
SHAPE_ONLY_FUNCTIONS = {torch.zeros_like, torch.ones_like, torch.empty_like, torch.full_like,
                        torch.zeros, torch.ones, torch.empty, torch.full}
SHAPE_ONLY_METHODS = {"new_zeros", "new_ones", "new_empty", "new_full", "size", "dim"}
SHAPE_ATTRIBUTES = {"shape", "ndim", "dtype", "device"}


@dataclass
class Producer:
    """A weight layer whose output units feed another layer's input columns."""

    name: str
    block: int = 1  # input columns of the consumer per producer unit (H*W after a flatten)


@dataclass
class PrunableLayer:
    """One weight layer and everything coupled to its output units."""

    name: str
    module: nn.Module
    kind: str  # "conv" or "linear"
    num_units: int  # output channels / features
    fan_in: int  # input channels / features
    multi_step: bool
    post_name: str | None = None  # neuron/activation giving the postsynaptic activity
    norm_name: str | None = None
    producers: list[Producer] = field(default_factory=list)
    input_is_model_input: bool = False  # some input columns come straight from the data
    input_concat: bool = False  # input assembled by cat/stack: column->unit map unknown
    residual_group: int | None = None
    is_output: bool = False
    # For a recurrent weight (input = the previous step's output of the neurons it feeds):
    # the feed-forward layer whose units are its rows *and* its columns (None: feed-forward).
    # Such a layer lists itself among its producers and shares that layer's residual group.
    recurrent_of: str | None = None

    @property
    def weight(self) -> torch.Tensor:
        return self.module.weight


@dataclass
class ModelStructure:
    layers: list[PrunableLayer]
    modules: dict[str, nn.Module]
    residual_groups: dict[int, list[str]]
    fixed_groups: set[int]  # groups tied to the model input (channels cannot be removed)
    exact: bool  # True when found by fx tracing, False for the execution-order fallback

    def __post_init__(self) -> None:
        self._by_name = {layer.name: layer for layer in self.layers}

    def __getitem__(self, name: str) -> PrunableLayer:
        try:
            return self._by_name[name]
        except KeyError:
            raise ModelStructureError(
                f"no weight layer named {name!r}; layers are {list(self._by_name)}"
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def prunable(self, include_output: bool = False) -> list[PrunableLayer]:
        return [la for la in self.layers if include_output or not la.is_output]

    def consumers(self, name: str) -> list[tuple[PrunableLayer, Producer]]:
        """Layers reading ``name``'s units, each with the producer entry describing how."""
        return [
            (layer, prod) for layer in self.layers for prod in layer.producers if prod.name == name
        ]

    def recurrent_partners(self, name: str) -> list[str]:
        """The layers sharing ``name``'s units through a recurrence (``name`` first; just
        ``[name]`` for a feed-forward layer without a recurrent weight)."""
        layer = self[name]
        root = layer.recurrent_of or name
        partners = [la.name for la in self.layers if la.recurrent_of == root]
        if not partners:
            return [name]
        return [name, *(n for n in [root, *partners] if n != name)]

    def group_members(self, name: str) -> list[str]:
        group = self[name].residual_group
        return [name] if group is None else self.residual_groups[group]


# --------------------------------------------------------------------------------------------
# fx tracing
# --------------------------------------------------------------------------------------------
class LeafTracer(fx.Tracer):
    """Treat child-less modules, neurons and multi-step wrappers as opaque calls."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return (
            next(iter(m.children()), None) is None
            or is_spiking_neuron(m)
            or is_multi_step(m)
            or super().is_leaf_module(m, module_qualified_name)
        )


class ModelGraph:
    """Queries over an fx graph in terms of module names."""

    def __init__(self, graph: fx.Graph, modules: dict[str, nn.Module]) -> None:
        self.graph = graph
        self.modules = modules

    def module_of(self, node: fx.Node) -> nn.Module | None:
        return self.modules.get(node.target) if node.op == "call_module" else None

    def is_weight(self, node: fx.Node) -> bool:
        return isinstance(self.module_of(node), WEIGHT_LAYERS)

    def is_activation(self, node: fx.Node) -> bool:
        module = self.module_of(node)
        if module is not None:
            return is_activation_module(module)
        if node.op == "call_function":
            return node.target in ACTIVATION_FUNCTIONS
        return node.op == "call_method" and node.target in ACTIVATION_METHODS

    def tensor_inputs(self, node: fx.Node) -> list[fx.Node]:
        if node.op == "call_module" and is_spiking_neuron(self.module_of(node)):
            return [a for a in node.args[:1] if isinstance(a, fx.Node)]  # current, not state
        if node.op == "call_method" and node.target in {"view", "reshape", "flatten"}:
            return [node.args[0]] if isinstance(node.args[0], fx.Node) else []
        if _shape_only(node):
            return []  # the result does not carry its argument's values
        return list(node.all_input_nodes)

    def producers(self, start: fx.Node) -> tuple[set[str], bool, bool]:
        """Weight layers reached walking back from ``start``; also (reaches input, concat)."""
        found: set[str] = set()
        reaches_input = concat = False
        seen: set[fx.Node] = set()
        stack = [start]
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            if self.is_weight(node):
                found.add(node.target)
                continue
            if node.op == "placeholder":
                reaches_input = True
                continue
            if node.op == "call_function" and node.target in CONCAT_OPS:
                concat = True
            stack.extend(self.tensor_inputs(node))
        return found, reaches_input, concat

    def downstream(self, start: fx.Node) -> tuple[list[fx.Node], bool]:
        """Non-weight nodes reachable from ``start`` before any weight layer (BFS order),
        and whether the graph output is reached."""
        order: list[fx.Node] = []
        reaches_output = False
        seen = {start}
        frontier = list(start.users)
        while frontier:
            nxt = []
            for node in frontier:
                if node in seen:
                    continue
                seen.add(node)
                if node.op == "output":
                    reaches_output = True
                    continue
                if self.is_weight(node):
                    continue
                # A neuron's state output feeds its own next step: follow spikes only.
                order.append(node)
                nxt.extend(node.users)
            frontier = nxt
        return order, reaches_output


def _shape_only(node: fx.Node) -> bool:
    if node.op == "call_method":
        return node.target in SHAPE_ONLY_METHODS
    if node.op != "call_function":
        return False
    if node.target is getattr:
        return len(node.args) > 1 and node.args[1] in SHAPE_ATTRIBUTES
    return node.target in SHAPE_ONLY_FUNCTIONS


def trace(model: nn.Module) -> fx.Graph:
    """The model's fx graph with neurons, multi-step layers and child-less modules as leaves."""
    return LeafTracer().trace(model)


def _structure_from_graph(model: nn.Module, graph: fx.Graph) -> ModelStructure:
    modules = dict(model.named_modules())
    g = ModelGraph(graph, modules)
    layer_nodes: dict[str, list[fx.Node]] = {}
    for node in graph.nodes:
        if g.is_weight(node):
            layer_nodes.setdefault(node.target, []).append(node)
    layers = [_layer_from_nodes(g, name, nodes) for name, nodes in layer_nodes.items()]
    groups, fixed = _residual_groups(g, graph, {la.name for la in layers})
    for gid, members in groups.items():
        for name in members:
            next(la for la in layers if la.name == name).residual_group = gid
    _mark_self_recurrent(layers, groups)
    layers = _attach_recurrent_neurons(layers, groups, modules)
    return ModelStructure(layers, modules, groups, fixed, exact=True)


# --------------------------------------------------------------------------------------------
# recurrent weights (docs/RECURRENT.md)
# --------------------------------------------------------------------------------------------
def _mark_self_recurrent(layers: list[PrunableLayer], groups: dict[int, list[str]]) -> None:
    """A traced layer among its own producers reads the previous step's output of the
    neurons it feeds: a recurrence written in plain PyTorch. It joins the feed-forward layer
    feeding the same neurons (its residual-group partner with the same postsynaptic module)."""
    by_name = {la.name: la for la in layers}
    for layer in layers:
        if layer.name not in {p.name for p in layer.producers} or layer.residual_group is None:
            continue
        partners = [by_name[m] for m in groups[layer.residual_group] if m != layer.name]
        feeds = [la for la in partners if la.name not in {p.name for p in la.producers}
                 and la.post_name == layer.post_name]
        if feeds:
            layer.recurrent_of = feeds[0].name


def recurrent_neurons(modules: dict[str, nn.Module]) -> dict[str, str]:
    """``{neuron name: name of its recurrent weight layer}`` for snnTorch ``RLeaky`` /
    ``RSynaptic`` neurons with all-to-all recurrent weights. A spiking neuron holding any other
    weight layer is refused: devprune cannot know what it computes with it."""
    found: dict[str, str] = {}
    for name, module in modules.items():
        if not is_spiking_neuron(module):
            continue
        inner = [child for child, m in module.named_modules()
                 if child and isinstance(m, WEIGHT_LAYERS)]
        if not inner:
            continue
        if type(module).__name__ not in RECURRENT_NEURONS or inner != [RECURRENT_CHILD]:
            raise ModelStructureError(
                f"neuron {name!r} ({type(module).__name__}) holds weight layer(s) {inner} that "
                "devprune cannot place; supported recurrent neurons are snnTorch "
                f"{'/'.join(RECURRENT_NEURONS)} (weight {RECURRENT_CHILD!r}) — see "
                "docs/RECURRENT.md"
            )
        found[name] = f"{name}.{RECURRENT_CHILD}" if name else RECURRENT_CHILD
    return found


def _attach_recurrent_neurons(layers: list[PrunableLayer], groups: dict[int, list[str]],
                              modules: dict[str, nn.Module]) -> list[PrunableLayer]:
    """Add the recurrent weight of every recurrent neuron as a layer (after the layers
    feeding the neuron), tied to them by a residual group and reading their units."""
    for neuron, name in recurrent_neurons(modules).items():
        module = modules[name]
        units, fan_in = unit_counts(module)
        feeds = [la for la in layers if la.post_name == neuron]
        if not feeds or units != fan_in or any(f.num_units != units for f in feeds):
            raise ModelStructureError(
                f"recurrent neuron {neuron!r}: its recurrent weight {name!r} maps {fan_in} "
                f"units to {units}, but it is fed by {[f.name for f in feeds] or 'no'} weight "
                "layer(s) of that width; feed it from one Linear/Conv layer with as many "
                "output units as the neuron has"
            )
        feed_names = {f.name for f in feeds}
        recurrent = PrunableLayer(
            name, module, layer_kind(module), units, fan_in, is_multi_step(module),
            post_name=neuron,
            producers=[*(Producer(f.name, 1) for f in feeds), Producer(name, 1)],
            is_output=any(f.is_output for f in feeds), recurrent_of=feeds[0].name,
        )
        for other in layers:  # the neuron's readers read the recurrence's units as well
            blocks = [p.block for p in other.producers if p.name in feed_names]
            if blocks:
                other.producers.append(Producer(name, blocks[0]))
        gid = next((f.residual_group for f in feeds if f.residual_group is not None), None)
        if gid is None:
            gid = max(groups, default=-1) + 1
            groups[gid] = [f.name for f in feeds]
            for feed in feeds:
                feed.residual_group = gid
        groups[gid].append(name)
        recurrent.residual_group = gid
        position = max(layers.index(f) for f in feeds) + 1
        layers = [*layers[:position], recurrent, *layers[position:]]
    return layers


def _inside_neurons(modules: dict[str, nn.Module]) -> set[str]:
    """Names of modules that live inside a spiking neuron (never hooked or walked)."""
    neurons = [n for n, m in modules.items() if n and is_spiking_neuron(m)]
    return {n for n in modules if any(n.startswith(f"{neuron}.") for neuron in neurons)}


def _layer_from_nodes(g: ModelGraph, name: str, nodes: list[fx.Node]) -> PrunableLayer:
    module = g.modules[name]
    units, fan_in = unit_counts(module)
    layer = PrunableLayer(name, module, layer_kind(module), units, fan_in, is_multi_step(module))
    producer_names: set[str] = set()
    for node in nodes:  # one node per call (several when a time loop calls the layer per step)
        found, reaches_input, concat = g.producers(node.args[0])
        producer_names |= found
        layer.input_is_model_input |= reaches_input
        layer.input_concat |= concat
        downstream, reaches_output = g.downstream(node)
        layer.is_output |= reaches_output
        _find_post_and_norm(g, layer, downstream)
    for pname in sorted(producer_names):
        punits = unit_counts(g.modules[pname])[0]
        if layer.input_concat:
            # Columns come from several producers side by side: no per-unit block exists.
            layer.producers.append(Producer(pname, 0))
            continue
        if fan_in % punits:
            raise ModelStructureError(
                f"layer {name!r} has {fan_in} input columns, not a multiple of the {punits} "
                f"units of its producer {pname!r}; concatenations and non-channel-major "
                "reshapes are not supported — exclude these layers from pruning"
            )
        layer.producers.append(Producer(pname, fan_in // punits))
    return layer


def _find_post_and_norm(g: ModelGraph, layer: PrunableLayer, downstream: list[fx.Node]) -> None:
    for node in downstream:
        module = g.module_of(node)
        is_norm = isinstance(module, NORM_LAYERS)
        if layer.norm_name is None and is_norm and module.num_features == layer.num_units:
            layer.norm_name = node.target
        if layer.post_name is None and g.is_activation(node):
            layer.post_name = node.target if node.op == "call_module" else None
            if layer.post_name is not None:
                return


def _residual_groups(
    g: ModelGraph, graph: fx.Graph, layer_names: set[str]
) -> tuple[dict[int, list[str]], set[int]]:
    """Union the producers of every add's operands; record groups tied to the input."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    input_tied: set[str] = set()
    for node in graph.nodes:
        is_add = (node.op == "call_function" and node.target in ADD_OPS) or (
            node.op == "call_method" and node.target in {"add", "add_"}
        )
        operands = [a for a in node.args if isinstance(a, fx.Node)]
        if not is_add or len(operands) < 2:
            continue
        members: set[str] = set()
        tied_to_input = False
        for operand in operands:
            found, reaches_input, _ = g.producers(operand)
            members |= found & layer_names
            tied_to_input |= reaches_input
        members_sorted = sorted(members)
        for member in members_sorted:
            find(member)  # registers single-member groups (a layer added to the input)
        for other in members_sorted[1:]:
            parent[find(other)] = find(members_sorted[0])
        if tied_to_input and members_sorted:
            input_tied.add(members_sorted[0])
    roots: dict[str, list[str]] = {}
    for name in parent:
        roots.setdefault(find(name), []).append(name)
    groups: dict[int, list[str]] = {}
    fixed: set[int] = set()
    for gid, (root, members) in enumerate(sorted(roots.items())):
        groups[gid] = sorted(members)
        if any(find(m) == root for m in input_tied):
            fixed.add(gid)
    return groups, fixed


# --------------------------------------------------------------------------------------------
# execution-order fallback
# --------------------------------------------------------------------------------------------
def _structure_from_execution(model: nn.Module, example_input: Any,
                              trace_error: Exception | None = None) -> ModelStructure:
    modules = dict(model.named_modules())
    inside = _inside_neurons(modules)
    watched = {n: m for n, m in modules.items() if n not in inside and (
        next(iter(m.children()), None) is None or is_spiking_neuron(m))}
    flow = _DataFlow(watched)
    with flow.attached():
        flow.run(model, example_input)
    order = flow.order
    first_seen = list(dict.fromkeys(order))  # a time loop repeats the order: keep first calls
    flow.refuse_feedback(model, first_seen, trace_error)
    layers: list[PrunableLayer] = []
    for name in first_seen:
        module = modules[name]
        if isinstance(module, WEIGHT_LAYERS):
            units, fan_in = unit_counts(module)
            layer = PrunableLayer(name, module, layer_kind(module), units, fan_in,
                                  is_multi_step(module))
            if layers:
                prev = layers[-1]
                layer.producers.append(Producer(prev.name, max(fan_in // prev.num_units, 1)))
            else:
                layer.input_is_model_input = True
            layers.append(layer)
        elif layers:
            last = layers[-1]
            if isinstance(module, NORM_LAYERS) and last.norm_name is None:
                last.norm_name = name
            if is_activation_module(module) and last.post_name is None:
                last.post_name = name
    if layers:
        layers[-1].is_output = True
    groups: dict[int, list[str]] = {}
    layers = _attach_recurrent_neurons(layers, groups, modules)
    return ModelStructure(layers, modules, groups, set(), exact=False)


class _DataFlow:
    """Forward hooks recording, on an example input, the call order of the watched modules
    and which weight layers' outputs each weight layer's input was computed from: through
    the autograd graph (any differentiable path) and by tensor identity (detached paths)."""

    def __init__(self, watched: dict[str, nn.Module]) -> None:
        self.watched = watched
        self.names = {m: n for n, m in watched.items()}
        self.clear()

    def clear(self) -> None:
        """Forget what was recorded."""
        self.order: list[str] = []
        self.weight_outputs: dict[Any, str] = {}  # grad_fn of a weight layer's output -> name
        self.produced_by: dict[int, str] = {}  # data_ptr of a watched module's output -> name
        self.reads: list[tuple[str, Any, set[str]]] = []  # (layer, input grad_fn, by identity)
        self._keep: list[Any] = []  # outputs held so their storage and grad_fn stay unique

    @staticmethod
    def _tensors(value: Any) -> list[torch.Tensor]:
        if torch.is_tensor(value):
            return [value]
        if isinstance(value, (tuple, list)):
            return [t for item in value for t in _DataFlow._tensors(item)]
        return []

    def _hook(self, module: nn.Module, inputs: tuple, output: Any) -> None:
        name = self.names[module]
        self.order.append(name)
        if isinstance(module, WEIGHT_LAYERS) and inputs and torch.is_tensor(inputs[0]):
            x = inputs[0]
            source = self.produced_by.get(x.data_ptr()) if x.numel() else None
            self.reads.append((name, x.grad_fn, {source} if source else set()))
            if torch.is_tensor(output) and output.grad_fn is not None:
                self.weight_outputs[output.grad_fn] = name
        for tensor in self._tensors(output):
            if tensor.numel():
                self.produced_by[tensor.data_ptr()] = name
        self._keep.append(output)

    def attached(self) -> Any:
        import contextlib

        @contextlib.contextmanager
        def hooks() -> Any:
            handles = [m.register_forward_hook(self._hook) for m in self.watched.values()]
            try:
                yield
            finally:
                for handle in handles:
                    handle.remove()

        return hooks()

    def run(self, model: nn.Module, example_input: Any) -> None:
        """One forward in eval mode, with autograd recording (inputs made to need grad)."""
        def needing_grad(x: Any) -> Any:
            if torch.is_tensor(x) and x.is_floating_point():
                return x.detach().requires_grad_(True)
            return x

        args = example_input if isinstance(example_input, tuple) else (example_input,)
        was_training = model.training
        model.eval()
        try:
            with torch.enable_grad(), torch.random.fork_rng(devices=[]):
                model(*(needing_grad(a) for a in args))
        except RuntimeError:  # e.g. in-place edits of the input: tensor identity only
            self.clear()
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                model(*args)
        finally:
            model.train(was_training)

    def _producers(self, grad_fn: Any) -> set[str]:
        found: set[str] = set()
        seen: set[Any] = set()
        stack = [grad_fn] if grad_fn is not None else []
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            if node in self.weight_outputs:
                found.add(self.weight_outputs[node])
                continue
            stack.extend(n for n, _ in node.next_functions if n is not None)
        return found

    def refuse_feedback(self, model: nn.Module, first_seen: list[str],
                        trace_error: Exception | None) -> None:
        """Raise when a weight layer reads its own output or that of a module first run after
        it (a recurrence): the chain the fallback assumes would be wrong."""
        position = {name: i for i, name in enumerate(first_seen)}
        for layer, grad_fn, by_identity in self.reads:
            for source in sorted(self._producers(grad_fn) | by_identity):
                if position.get(source, -1) >= position[layer]:
                    why = f" ({str(trace_error).splitlines()[0]})" if trace_error else ""
                    raise ModelStructureError(
                        f"{type(model).__name__}: torch.fx cannot trace it{why}, and on the "
                        f"example input layer {layer!r} reads the output of {source!r}, which "
                        "runs after it: a recurrent connection. Execution order cannot show "
                        "how recurrent weights couple units, so devprune refuses instead of "
                        "guessing; make forward traceable (loop over range(T), not over a "
                        "tensor; no data-dependent if) or use snnTorch RLeaky — see "
                        "docs/RECURRENT.md"
                    )


def discover(model: nn.Module, example_input: Any = None) -> ModelStructure:
    """Find the prunable layers of ``model`` and how their units are coupled.

    ``example_input`` (a batch as the model takes it) is only needed when the model cannot
    be traced by ``torch.fx``.
    """
    unsupported = [f"{n!r} ({type(m).__name__})" for n, m in model.named_modules()
                   if is_unsupported_recurrent(m)]
    if unsupported:
        raise ModelStructureError(
            f"{type(model).__name__} contains {', '.join(unsupported)}: devprune does not "
            "prune or measure through this recurrent layer (LSTM/GRU/RNN gates, SpikingJelly's "
            "LinearRecurrentContainer: weights coupling units in ways it does not model); "
            "supported recurrences are snnTorch RLeaky/RSynaptic and an nn.Linear applied to "
            "the previous step's spikes — see docs/RECURRENT.md"
        )
    try:
        graph = trace(model)
    except Exception as trace_error:  # any tracing failure means: fall back
        if example_input is None:
            raise ModelStructureError(
                f"cannot trace {type(model).__name__} with torch.fx ({trace_error}); pass an "
                "example input so the structure can be read from execution order"
            ) from trace_error
        structure = _structure_from_execution(model, example_input, trace_error)
    else:
        structure = _structure_from_graph(model, graph)
    if not structure.layers:
        raise ModelStructureError(
            f"{type(model).__name__} has no Conv1d/Conv2d/Linear layer: nothing to prune"
        )
    return structure
