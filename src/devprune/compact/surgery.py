"""Physical removal of dead units: ``compact(model, masks)`` returns a smaller, equal model.

The compacted model is a deep copy in which every weight layer, BatchNorm and per-channel
neuron parameter keeps only the units that can carry signal, and every downstream layer keeps
only the input columns those units feed (a removed conv channel removes its ``block`` of
columns of a linear after a flatten). Modules keep their classes (a multi-step
``devprune.snn.layers.Conv2d`` stays one); only sizes change. Pruned synapses of kept units
stay as zeros in the dense weights.

Semantics: the result equals the model with ``masks`` applied in *hard* mode (pruned
weights zero, and a dead unit's bias and BN affine zero, so it outputs exactly zero) —
:func:`masked_copy` builds that reference. For ``reference``-mode masks, whose dead units
may keep a bias, this is the hard-masked model, not the soft-masked one.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from typing import Any

import torch
from torch import nn

from devprune.compact.coupling import channel_tensors, coupled_modules, non_silent_units
from devprune.compact.plan import RemovalPlan, build_plan, expand_blocks
from devprune.errors import ModelStructureError
from devprune.kinds import CHANNEL_SIZE_ATTRIBUTES, unit_size_attributes, unit_tensors
from devprune.masks import MaskSet
from devprune.measure.static import kept_entries, unread_units
from devprune.structure import ModelStructure, discover


# --------------------------------------------------------------------------------------------
# the masked reference
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def apply_hard_masks(structure: ModelStructure, masks: MaskSet) -> None:
    """Zero pruned weights, dead input columns, dead units' bias and own BN affine in the
    modules of ``structure`` (which may belong to a copy of the masked model)."""
    for name in masks.names():
        if name not in structure:
            raise ModelStructureError(
                f"the masks cover layer {name!r}, which this model does not have; compact "
                "the model the masks were made for"
            )
        layer = structure[name]
        weight = layer.module.weight
        if masks[name].shape != weight.shape:
            raise ModelStructureError(
                f"mask of {name!r} has shape {tuple(masks[name].shape)} but the weight has "
                f"{tuple(weight.shape)}; the masks belong to another model"
            )
        weight.mul_(masks.effective_mask(name).to(weight.device))
        alive = masks.unit_alive(name).to(weight.device)
        for param in _unit_parameters(structure, name):
            param.mul_(alive.to(param.dtype))


def _unit_parameters(structure: ModelStructure, name: str) -> list[nn.Parameter]:
    """The hard-mask rule (:func:`devprune.kinds.unit_tensors`, as the MaskSet applies it)."""
    layer = structure[name]
    norm = structure.modules[layer.norm_name] if layer.norm_name is not None else None
    return unit_tensors(layer.module, norm)


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose modules are also registered wherever the originals
    are tracked by class-level instance lists (snnTorch's ``SpikingNeuron.instances``, which
    ``snntorch.utils.reset`` walks), so the copy resets like the original. State tensors a
    training forward left with autograd history (snnTorch ``RLeaky``'s ``spk``/``mem``/``reset``)
    are copied detached: deepcopy refuses non-leaf tensors."""
    memo: dict[int, Any] = {}
    for module in model.modules():
        for value in [*vars(module).values(), *module._buffers.values()]:
            if torch.is_tensor(value) and value.grad_fn is not None:
                memo[id(value)] = value.detach().clone()
    clone = copy.deepcopy(model, memo)
    for (_, original), (_, twin) in zip(model.named_modules(), clone.named_modules(), strict=True):
        for cls in type(original).__mro__:
            registry = cls.__dict__.get("instances")
            if isinstance(registry, list) and any(m is original for m in registry):
                registry.append(twin)
    return clone


def masked_copy(model: nn.Module, masks: MaskSet, example_input: Any = None) -> nn.Module:
    """A deep copy of ``model`` with ``masks`` applied in hard mode: what :func:`compact`
    must reproduce."""
    clone = copy_model(model)
    apply_hard_masks(discover(clone, example_input), masks)
    return clone


# --------------------------------------------------------------------------------------------
# slicing
# --------------------------------------------------------------------------------------------
def _sliced(tensor: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor:
    return tensor.index_select(dim, index.to(tensor.device)).clone()


def _replace(module: nn.Module, name: str, value: torch.Tensor) -> None:
    old = getattr(module, name)
    if isinstance(old, nn.Parameter):
        setattr(module, name, nn.Parameter(value, requires_grad=old.requires_grad))
    else:
        module._buffers[name] = value


@torch.no_grad()
def _shrink_weight_layer(module: nn.Module, keep_out: torch.Tensor,
                         keep_in: torch.Tensor | None) -> None:
    weight = _sliced(module.weight, keep_out, 0)
    if keep_in is not None:
        weight = _sliced(weight, keep_in, 1)
    _replace(module, "weight", weight)
    if getattr(module, "bias", None) is not None:
        _replace(module, "bias", _sliced(module.bias, keep_out, 0))
    units, inputs = unit_size_attributes(module)
    setattr(module, units, weight.shape[0])
    setattr(module, inputs, weight.shape[1])


@torch.no_grad()
def _shrink_coupled(module: nn.Module, keep: torch.Tensor, units: int) -> None:
    """Slice every per-channel tensor (leading axis = units, or units x a flatten block)."""
    replaced: dict[int, torch.Tensor] = {}
    for name, tensor in channel_tensors(module).items():
        length = tensor.shape[0]
        if length % units:
            continue  # not indexed by these units
        index = keep if length == units else expand_blocks(keep, length // units)
        _replace(module, name, _sliced(tensor, index, 0))
        replaced[id(tensor)] = getattr(module, name)
        for attr in CHANNEL_SIZE_ATTRIBUTES:
            if getattr(module, attr, None) == length:
                setattr(module, attr, index.numel())
    # submodules holding the same tensor as a plain attribute (snnTorch RLeaky's one-to-one
    # recurrence keeps the neuron's ``V`` in ``recurrent.V``) see the sliced one
    for child in list(module.modules())[1:]:
        for store in (child._parameters, child._buffers, vars(child)):
            for attr, value in list(store.items()):
                if torch.is_tensor(value) and id(value) in replaced:
                    store[attr] = replaced[id(value)]


# --------------------------------------------------------------------------------------------
# compact
# --------------------------------------------------------------------------------------------
def plan_removal(model: nn.Module, structure: ModelStructure, masks: MaskSet,
                 unit_multiple: int = 1, *, unread: bool | Collection[str] = False
                 ) -> tuple[RemovalPlan, dict[str, str]]:
    """The removal plan for a hard-masked ``model``, and its coupled non-weight modules.

    ``unread``: also remove units whose output no kept consumer row reads (all their outgoing
    entries pruned), repeated until nothing more goes (removing a consumer row can leave its
    inputs unread); True for every layer, or the names of the layers where they may go (the
    in-training shrink: those whose pruner state allows it, ``Pruner.shrinkable_unread``)."""
    allowed = None if unread is True else set(unread or ())
    class_of = {la.name: structure.group_members(la.name)[0] for la in structure.layers}
    coupled, pins = coupled_modules(model, structure, class_of)
    units = {class_of[la.name]: la.num_units for la in structure.layers}
    spatial = {class_of[la.name]: la.kind == "conv" for la in structure.layers}
    loud = non_silent_units(structure.modules, coupled, units, spatial)

    def plan_with(nobody: dict[str, torch.Tensor] | None) -> RemovalPlan:
        return build_plan(structure, masks, extra_pins=pins, keep_alive=loud,
                          unit_multiple=unit_multiple, unread=nobody)

    plan = plan_with(None)
    if not unread:
        return plan, coupled
    kept = kept_entries(structure, masks)
    while True:
        rows = {la.name: _as_rows(plan.keep_out[la.name], la.num_units, la.module.weight.device)
                for la in structure.layers}
        nobody = unread_units(structure, kept, rows)
        if allowed is not None:
            nobody = {n: v & (n in allowed) for n, v in nobody.items()}
        shrunk = plan_with(nobody)
        if all(torch.equal(shrunk.keep_out[n], plan.keep_out[n]) for n in plan.keep_out):
            break
        plan = shrunk
    return plan, coupled


def _as_rows(keep: torch.Tensor, units: int, device: torch.device) -> torch.Tensor:
    rows = torch.zeros(units, dtype=torch.bool, device=device)
    rows[keep.to(device)] = True
    return rows


def compact(model: nn.Module, masks: MaskSet, example_input: Any = None, *,
            verify: bool = True, unit_multiple: int = 1) -> nn.Module:
    """A physically smaller deep copy of ``model`` computing what the hard-masked model
    computes.

    ``example_input`` (a batch as the model takes it) is needed for models ``torch.fx`` cannot
    trace; when given and ``verify`` is True the compacted model's outputs on it are checked
    against the masked model's (eval mode, same random state) and a mismatch raises.
    ``unit_multiple`` > 1 keeps zero units to round each shrunk width up to that multiple
    (the inference layout: 16 suits AVX-512 float32 kernels; docs/COMPACT.md#speed); the
    masks of such a model (:func:`compacted_masks`) mark those units dead.
    """
    clone = copy_model(model)
    structure = discover(clone, example_input)
    apply_hard_masks(structure, masks)
    plan, coupled = plan_removal(clone, structure, masks, unit_multiple, unread=True)
    reference = copy.deepcopy(clone) if verify and example_input is not None else None
    for layer in structure.layers:
        _shrink_weight_layer(layer.module, plan.keep_out[layer.name], plan.keep_in[layer.name])
    units = {plan.class_of[la.name]: la.num_units for la in structure.layers}
    keep_by_class = {plan.class_of[la.name]: plan.keep_out[la.name] for la in structure.layers}
    for name, cls in coupled.items():
        _shrink_coupled(structure.modules[name], keep_by_class[cls], units[cls])
    clone.compaction_plan = plan  # kept on the instance for reports; not in the state_dict
    if reference is not None:
        check_equal_outputs(reference, clone, example_input)
    return clone


def output_tensors(output: Any) -> list[torch.Tensor]:
    """Every tensor of a model's output, in order: a tensor, or tensors nested in tuples,
    lists and dicts (snnTorch's ``(spk, mem)``, a dict of heads...)."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        return [t for key in output for t in output_tensors(output[key])]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in output_tensors(item)]
    return []


def _run(model: nn.Module, example_input: Any, seed: int) -> Any:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            args = example_input if isinstance(example_input, tuple) else (example_input,)
            return model(*args)
    finally:
        model.train(was_training)


def check_equal_outputs(reference: nn.Module, compacted: nn.Module, example_input: Any,
                        seed: int = 0) -> None:
    """Raise unless both models give the same outputs on ``example_input`` (eval mode)."""
    try:
        expected = _run(reference, example_input, seed)
        got = _run(compacted, example_input, seed)
    except RuntimeError as err:
        raise ModelStructureError(
            f"the compacted model no longer runs ({str(err).splitlines()[0]}): a coupling "
            "this model uses is not described by its structure (concatenation, reshape, a "
            "module with per-channel state); leave those layers out of the masks"
        ) from err
    expected_all, got_all = output_tensors(expected), output_tensors(got)
    if not expected_all or len(expected_all) != len(got_all):
        raise ModelStructureError(
            f"the compacted model returns {len(got_all)} tensor(s) where the masked model "
            f"returns {len(expected_all)} ({type(expected).__name__}); outputs must be "
            "tensors, or tuples / lists / dicts of tensors, to be compared"
        )
    for index, (want, have) in enumerate(zip(expected_all, got_all, strict=True)):
        want, have = want.detach().float(), have.detach().float()
        scale = max(float(want.abs().max()), 1.0) if want.numel() else 1.0
        if want.shape != have.shape or not torch.allclose(have, want, rtol=1e-4,
                                                          atol=1e-5 * scale):
            diff = (have - want).abs().max() if have.shape == want.shape else float("nan")
            which = f" (output tensor {index})" if len(expected_all) > 1 else ""
            raise ModelStructureError(
                f"the compacted model's outputs differ from the masked model's{which} (max "
                f"|diff| {float(diff):.3g}); a coupling of this model is not handled — leave "
                "the affected layers out of the masks or compact with verify=False at your "
                "own risk"
            )


def compacted_masks(masks: MaskSet, compacted: nn.Module, example_input: Any = None) -> MaskSet:
    """``masks`` sliced to the compacted model's shapes (to keep training or pruning it)."""
    plan: RemovalPlan | None = getattr(compacted, "compaction_plan", None)
    if plan is None:
        raise ModelStructureError(
            "this model carries no compaction plan; pass the model compact() returned"
        )
    sliced = MaskSet(discover(compacted, example_input), layers=masks.names(), mode=masks.mode)
    for name in masks.names():
        mask = masks[name].cpu().index_select(0, plan.keep_out[name])
        if plan.keep_in[name] is not None:
            mask = mask.index_select(1, plan.keep_in[name])
        sliced.masks[name] = mask.to(sliced.masks[name].device)
    return sliced
