import pytest
import torch

from devprune.errors import CheckpointError, ConfigError
from devprune.masks import MaskSet
from devprune.structure import discover
from tests.core.models import ChainSNN, TinyResNet


def _masks(mode="default", model=None):
    model = model or ChainSNN()
    return model, MaskSet(discover(model), mode=mode)


def test_unit_and_kernel_pruning_counts():
    _, ms = _masks()
    assert ms.names() == ["c1", "c2", "f1"]  # output layer excluded by default
    assert ms.prune_units("c2", torch.tensor([0, 5])) == 2
    assert ms.prune_units("c2", torch.tensor([5])) == 0  # already dead
    assert ms.unit_alive("c2").tolist() == [False, True, True, True, True, False]
    kernels = torch.zeros(6, 4, dtype=torch.bool)
    kernels[1, 2] = True
    assert ms.prune_synapses("c2", kernels) == 9  # one 3x3 kernel
    assert not ms.kernel_mask("c2")[1, 2] and ms.kernel_mask("c2")[1, 3]
    assert ms.regrow("c2", kernels) == 9
    total = sum(m.numel() for m in ms.masks.values())
    assert ms.connectivity() == pytest.approx((total - 2 * 36) / total)


def test_dead_filter_kills_its_flattened_block_of_the_next_layer():
    _, ms = _masks()
    ms.prune_units("c2", torch.tensor([1]))
    eff = ms.effective_mask("f1")
    dead = ~eff.any(0)
    assert dead.nonzero().flatten().tolist() == [4, 5, 6, 7]  # channel 1 -> columns 4..7
    assert ms["f1"].all()  # the stored mask is untouched: only the effective one changes


def test_residual_column_dies_only_when_every_producer_unit_is_dead():
    model = TinyResNet()
    ms = MaskSet(discover(model), mode="default")
    ms.prune_units("b3.conv2", torch.tensor([3]))
    assert ms.dead_input_columns(ms.structure["fc"]) is None  # shortcut still carries it
    ms.prune_units("b2.conv2", torch.tensor([3]))
    ms.prune_units("b2.shortcut.0", torch.tensor([3]))
    assert ms.dead_input_columns(ms.structure["fc"]).nonzero().flatten().tolist() == [3]


@pytest.mark.parametrize("opt_cls", [torch.optim.AdamW, torch.optim.SGD])
def test_hard_mode_keeps_pruned_entries_exactly_zero(opt_cls):
    torch.manual_seed(0)
    model, ms = _masks("default")
    kwargs = {"momentum": 0.9, "nesterov": True} if opt_cls is torch.optim.SGD else {}
    opt = opt_cls(model.parameters(), lr=0.05, weight_decay=0.1, **kwargs)
    x = torch.rand(8, 1, 8, 8)
    for step in range(30):
        if step == 5:  # prune after the optimizer has built up momentum
            ms.prune_units("c2", torch.tensor([2]))
            ms.prune_synapses("f1", torch.rand(5, 24) < 0.5)
            ms.apply()
            ms.zero_optimizer_state(opt)
        opt.zero_grad()
        model(x).pow(2).sum().backward()
        ms.mask_gradients()
        opt.step()
        if step >= 5:
            ms.apply()
    assert (model.c2.weight[2] == 0).all() and model.c2.bias[2] == 0
    assert model.b2.weight[2] == 0 and model.b2.bias[2] == 0
    assert (model.f1.weight[~ms.effective_mask("f1")] == 0).all()
    assert (model.f1.weight[:, 8:12] == 0).all()  # columns of dead filter 2
    for value in opt.state[model.f1.weight].values():
        if torch.is_tensor(value) and value.shape == model.f1.weight.shape:
            assert (value[~ms.effective_mask("f1")] == 0).all()


def test_reference_mode_lets_pruned_weights_retrain_until_the_next_step():
    torch.manual_seed(0)
    model, ms = _masks("reference")
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    ms.prune_units("f1", torch.tensor([0]))
    ms.apply()
    assert (model.f1.weight[0] == 0).all()
    x = torch.rand(8, 1, 8, 8)
    for _ in range(3):
        opt.zero_grad()
        (model(x) - 1).pow(2).sum().backward()
        opt.step()
    assert (model.f1.weight[0] != 0).any()  # soft masking: regrew inside the epoch
    ms.apply()
    assert (model.f1.weight[0] == 0).all()


def test_state_round_trip_and_mismatch_refused():
    _, ms = _masks()
    ms.prune_units("f1", torch.tensor([1, 2]))
    _, other = _masks()
    other.load_state_dict(ms.state_dict())
    assert torch.equal(other["f1"], ms["f1"])
    bad = ms.state_dict()
    bad["masks"]["f1"] = torch.ones(2, 2, dtype=torch.bool)
    with pytest.raises(CheckpointError, match="f1"):
        other.load_state_dict(bad)
    with pytest.raises(CheckpointError, match="different model"):
        other.load_state_dict({"masks": {"zzz": torch.ones(1)}})


def test_unknown_mode_is_a_config_error():
    with pytest.raises(ConfigError, match=r"prune\.mode"):
        MaskSet(discover(ChainSNN()), mode="soft")


def test_derived_masks_follow_every_edit():
    _, ms = _masks()
    assert ms.effective_mask("f1").all()  # cached now
    ms.prune_units("c2", torch.tensor([0]))
    assert not ms.effective_mask("f1")[:, :4].any()  # edit dropped the cache
    ms.regrow("c2", torch.ones(6, 4, dtype=torch.bool))
    assert ms.effective_mask("f1").all()
    ms["c2"][3] = False  # an in-place edit by hand needs an explicit invalidate()
    ms.invalidate()
    assert not ms.unit_alive("c2")[3]


def test_hard_mode_zeroes_output_layer_columns_read_from_dead_units():
    model, ms = _masks("default")
    assert "f2" not in ms  # the output layer has no mask of its own
    ms.prune_units("f1", torch.tensor([1, 3]))
    ms.apply()
    assert (model.f2.weight[:, [1, 3]] == 0).all() and (model.f2.weight[:, [0, 2, 4]] != 0).all()
    model(torch.rand(4, 1, 8, 8)).sum().backward()
    ms.mask_gradients()
    assert (model.f2.weight.grad[:, [1, 3]] == 0).all()
    _, soft = _masks("reference", model=ChainSNN())
    soft.prune_units("f1", torch.tensor([1]))
    soft.apply()
    assert (soft.structure["f2"].module.weight[:, 1] != 0).any()  # reference mode: untouched


def test_any_pruned_follows_edits_and_state():
    _, ms = _masks()
    assert not ms.any_pruned()
    ms.prune_synapses("f1", torch.eye(5, 24, dtype=torch.bool))
    assert ms.any_pruned()
    ms.regrow("f1", torch.ones(5, 24, dtype=torch.bool))
    assert not ms.any_pruned()
    _, pruned = _masks()
    pruned.prune_units("c1", torch.tensor([0]))
    ms.load_state_dict(pruned.state_dict())
    assert ms.any_pruned()
