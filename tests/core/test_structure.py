import pytest
import torch
from torch import nn

from devprune.errors import ModelStructureError
from devprune.structure import discover
from tests.core.models import ChainSNN, TinyResNet


def test_chain_snn_layers_posts_norms_and_flatten_block():
    st = discover(ChainSNN())
    assert st.exact
    assert [la.name for la in st.layers] == ["c1", "c2", "f1", "f2"]
    c1, c2, f1, f2 = st.layers
    assert (c1.post_name, c1.norm_name, c1.input_is_model_input) == ("n1", None, True)
    assert (c2.post_name, c2.norm_name) == ("n2", "b2")
    assert [(p.name, p.block) for p in c2.producers] == [("c1", 1)]
    # 6 channels x 2x2 spatial flattened: each c2 filter feeds a block of 4 fc1 columns
    assert [(p.name, p.block) for p in f1.producers] == [("c2", 4)]
    assert f2.is_output and not f1.is_output
    assert [la.name for la in st.prunable()] == ["c1", "c2", "f1"]
    assert all(la.multi_step for la in st.layers)


def test_resnet_residual_groups_chain_through_identity_shortcuts():
    st = discover(TinyResNet())
    groups = {tuple(v) for v in st.residual_groups.values()}
    assert ("b1.conv2", "stem") in groups
    assert ("b2.conv2", "b2.shortcut.0", "b3.conv2") in groups
    assert not st.fixed_groups
    fc = st["fc"]
    assert {p.name for p in fc.producers} == {"b2.conv2", "b2.shortcut.0", "b3.conv2"}
    assert st["b1.conv1"].residual_group is None
    assert st["b2.shortcut.0"].norm_name == "b2.shortcut.1"


def test_residual_add_of_the_model_input_fixes_the_group():
    class InputResidual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.head = nn.Linear(3, 2)

        def forward(self, x):
            return self.head((x + self.conv(x)).mean((2, 3)))

    st = discover(InputResidual())
    gid = st["conv"].residual_group
    assert gid is not None and gid in st.fixed_groups
    assert st["head"].input_is_model_input


def test_untraceable_model_falls_back_to_execution_order():
    class DataDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.act, self.b = nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow defeats fx
                x = x * 2
            return self.b(self.act(self.a(x)))

    with pytest.raises(ModelStructureError, match="example input"):
        discover(DataDependent())
    st = discover(DataDependent(), torch.randn(3, 4))
    assert not st.exact
    assert [la.name for la in st.layers] == ["a", "b"]
    assert st["a"].post_name == "act" and st["b"].is_output
    assert [(p.name, p.block) for p in st["b"].producers] == [("a", 1)]


def test_model_without_weight_layers_is_refused():
    with pytest.raises(ModelStructureError, match="nothing to prune"):
        discover(nn.Sequential(nn.ReLU()))


def test_unknown_layer_name_lists_the_layers():
    st = discover(ChainSNN())
    with pytest.raises(ModelStructureError, match="c1"):
        st["conv9"]


def test_concatenated_inputs_are_flagged_and_never_inferred_dead():
    from devprune.masks import MaskSet

    class Concat(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 3), nn.Linear(4, 3)
            self.head = nn.Linear(6, 2)

        def forward(self, x):
            return self.head(torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], dim=1))

    st = discover(Concat())
    assert st["head"].input_concat
    masks = MaskSet(st)
    masks.prune_units("a", torch.tensor([0, 1, 2]))
    assert masks.dead_input_columns(st["head"]) is None  # column map unknown: keep all
