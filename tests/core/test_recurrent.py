"""Recurrent spiking layers (docs/RECURRENT.md): snnTorch ``RLeaky`` and a recurrence written in
plain PyTorch are discovered as layers whose rows and columns are the same units; masks,
measurement and compaction handle them; what cannot be placed is refused by name."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from devprune.compact import compact
from devprune.errors import ModelStructureError
from devprune.masks import MaskSet
from devprune.measure import static_metrics, workload_metrics
from devprune.snn.neurons import LIF
from devprune.structure import discover

snn = pytest.importorskip("snntorch")


class RLeakyNet(nn.Module):
    """fc1 -> RLeaky(6, all-to-all) -> fc2 -> Leaky, stepped inside forward."""

    def __init__(self, steps: int = 4, hidden: int = 6) -> None:
        super().__init__()
        self.steps = steps
        self.fc1, self.lif1 = nn.Linear(5, hidden), snn.RLeaky(beta=0.9, linear_features=hidden)
        self.fc2, self.lif2 = nn.Linear(hidden, 3), snn.Leaky(beta=0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spk1, mem1 = self.lif1.init_rleaky()
        mem2 = self.lif2.init_leaky()
        out = []
        for _ in range(self.steps):
            spk1, mem1 = self.lif1(self.fc1(x), spk1, mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            out.append(spk2)
        return torch.stack(out).mean(0)


class RLeakyOverTime(RLeakyNet):
    """The same, iterating over the time axis of ``[T, B, 5]`` input: fx cannot trace it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spk1, mem1 = self.lif1.init_rleaky()
        mem2 = self.lif2.init_leaky()
        out = []
        for xt in x:
            spk1, mem1 = self.lif1(self.fc1(xt), spk1, mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            out.append(spk2)
        return torch.stack(out).mean(0)


class LinearRecurrence(nn.Module):
    """A recurrence in plain PyTorch: ``rec`` reads the hidden neurons' previous spikes."""

    def __init__(self, steps: int = 4, hidden: int = 6) -> None:
        super().__init__()
        self.steps, self.hidden = steps, hidden
        self.fc1, self.rec = nn.Linear(5, hidden), nn.Linear(hidden, hidden)
        self.lif1 = snn.Leaky(beta=0.9)
        self.fc2, self.lif2 = nn.Linear(hidden, 3), snn.Leaky(beta=0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spk1 = x.new_zeros(x.shape[0], self.rec.in_features)  # width from the layer
        out = []
        for _ in range(self.steps):
            spk1, mem1 = self.lif1(self.fc1(x) + self.rec(spk1), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            out.append(spk2)
        return torch.stack(out).mean(0)


class LinearRecurrenceOverTime(LinearRecurrence):
    """The plain recurrence iterating over a tensor: untraceable, so the fallback runs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spk1 = torch.zeros(x.shape[1], self.hidden)
        out = []
        for xt in x:
            spk1, mem1 = self.lif1(self.fc1(xt) + self.rec(spk1), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            out.append(spk2)
        return torch.stack(out).mean(0)


def _strong(model: nn.Module) -> nn.Module:
    """Weights large enough that every hidden neuron fires through input and recurrence."""
    torch.manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.weight.uniform_(0.2, 1.0)
                module.bias.fill_(0.1)
    return model


def hidden_spikes(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``[steps, B, hidden]`` spikes of ``lif1``."""
    spikes = []
    handle = model.lif1.register_forward_hook(lambda _m, _i, out: spikes.append(out[0]))
    with torch.no_grad():
        model(x)
    handle.remove()
    return torch.stack(spikes)


# --------------------------------------------------------------------------------------------
# discovery
# --------------------------------------------------------------------------------------------
def test_rleaky_recurrent_weight_is_a_layer_over_the_neurons_of_fc1() -> None:
    st = discover(RLeakyNet())
    assert st.exact
    assert [la.name for la in st.layers] == ["fc1", "lif1.recurrent", "fc2"]
    rec = st["lif1.recurrent"]
    assert (rec.recurrent_of, rec.post_name, rec.num_units, rec.fan_in) == ("fc1", "lif1", 6, 6)
    assert [p.name for p in rec.producers] == ["fc1", "lif1.recurrent"]  # its own columns
    assert [p.name for p in st["fc2"].producers] == ["fc1", "lif1.recurrent"]
    assert st.group_members("fc1") == ["fc1", "lif1.recurrent"]
    assert st.recurrent_partners("fc1") == ["fc1", "lif1.recurrent"]
    assert st.recurrent_partners("lif1.recurrent") == ["lif1.recurrent", "fc1"]
    assert st.recurrent_partners("fc2") == ["fc2"]
    assert st["fc1"].recurrent_of is None and not rec.is_output


def test_plain_pytorch_recurrence_is_found_by_tracing() -> None:
    st = discover(LinearRecurrence())
    assert st.exact
    rec = st["rec"]
    assert rec.recurrent_of == "fc1" and rec.post_name == "lif1"
    assert not rec.input_is_model_input  # x.new_zeros(x.shape[0], n) carries no data
    assert {p.name for p in rec.producers} == {"fc1", "rec"}
    assert st.group_members("rec") == ["fc1", "rec"]


def test_untraceable_rleaky_model_is_handled_by_the_fallback() -> None:
    st = discover(RLeakyOverTime(), torch.rand(4, 2, 5))
    assert not st.exact
    assert [la.name for la in st.layers] == ["fc1", "lif1.recurrent", "fc2"]
    assert st["lif1.recurrent"].recurrent_of == "fc1"
    assert [p.name for p in st["fc2"].producers] == ["fc1", "lif1.recurrent"]


def test_untraceable_plain_recurrence_is_refused_not_guessed() -> None:
    with pytest.raises(ModelStructureError, match=r"'rec' reads the output of 'lif1'.*recurrent"):
        discover(LinearRecurrenceOverTime(), torch.rand(4, 2, 5))


def test_feedback_hidden_behind_arithmetic_is_caught_through_autograd() -> None:
    class Scaled(LinearRecurrenceOverTime):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mem1 = self.lif1.init_leaky()
            spk1 = torch.zeros(x.shape[1], self.hidden)
            for xt in x:
                spk1, mem1 = self.lif1(self.fc1(xt) + self.rec(0.5 * spk1), mem1)
            return self.fc2(spk1)

    with pytest.raises(ModelStructureError, match="'rec' reads the output of 'rec'"):
        discover(Scaled(), torch.rand(4, 2, 5))


def test_lstm_is_refused_by_name() -> None:
    class WithLSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm, self.head = nn.LSTM(5, 8), nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.lstm(x)[0][-1])

    with pytest.raises(ModelStructureError, match=r"'lstm' \(LSTM\).*RLeaky"):
        discover(WithLSTM(), torch.rand(4, 2, 5))


def test_spikingjelly_linear_recurrent_container_is_refused_by_name() -> None:
    layer = pytest.importorskip("spikingjelly.activation_based.layer")
    neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    model = nn.Sequential(
        layer.Linear(5, 6, step_mode="m"),
        layer.LinearRecurrentContainer(neuron.IFNode(), 6, 6, step_mode="m"),
        layer.Linear(6, 3, step_mode="m"),
    )
    with pytest.raises(ModelStructureError, match=r"'1' \(LinearRecurrentContainer\)"):
        discover(model, torch.rand(4, 2, 5))


def test_a_neuron_holding_an_unknown_weight_is_refused() -> None:
    class Odd(LIF):
        def __init__(self) -> None:
            super().__init__()
            self.gain = nn.Linear(4, 4)

    model = nn.Sequential(nn.Linear(3, 4), Odd(), nn.Linear(4, 2))
    with pytest.raises(ModelStructureError, match=r"neuron '1'.*\['gain'\]"):
        discover(model)


# --------------------------------------------------------------------------------------------
# masks
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,rec", [(RLeakyNet, "lif1.recurrent"), (LinearRecurrence, "rec")])
def test_pruning_a_unit_removes_its_row_column_and_feed_forward_row(cls, rec) -> None:
    model = _strong(cls())
    x = torch.rand(4, 5)
    assert bool((hidden_spikes(model, x).sum((0, 1)) > 0).all())  # all 6 fire before
    masks = MaskSet(discover(model))
    assert masks.names() == ["fc1", rec]
    assert masks.prune_units("fc1", torch.tensor([1, 4])) == 2
    dead = torch.tensor([False, True, False, False, True, False])
    assert torch.equal(masks.unit_alive("fc1"), ~dead)
    assert torch.equal(masks.unit_alive(rec), ~dead)  # the recurrent row went with it
    effective = masks.effective_mask(rec)
    assert not effective[:, dead].any() and effective[~dead][:, ~dead].all()  # and its column
    assert torch.equal(masks.dead_input_columns(discover(model)["fc2"]), dead)
    masks.apply()
    modules = dict(model.named_modules())
    assert torch.all(modules[rec].weight[dead] == 0) and torch.all(modules[rec].bias[dead] == 0)
    assert torch.all(modules[rec].weight[:, dead] == 0)
    assert torch.all(model.fc2.weight[:, dead] == 0)
    fired = hidden_spikes(model, x).sum((0, 1)) > 0
    assert not fired[dead].any() and fired[~dead].all()  # dead neurons are silent, others fire


def test_a_unit_with_only_its_recurrent_row_left_stays_alive_and_keeps_its_column() -> None:
    model = _strong(RLeakyNet())
    masks = MaskSet(discover(model))
    masks.prune_synapses("fc1", torch.arange(6)[:, None].expand(6, 5) == 2)  # fc1 row 2 only
    assert not masks.unit_alive("fc1")[2] and masks.unit_alive("lif1.recurrent")[2]
    assert masks.effective_mask("lif1.recurrent")[:, 2].all()  # it still fires: column kept
    masks.apply()
    assert bool((hidden_spikes(model, torch.rand(4, 5))[:, :, 2] > 0).any())


# --------------------------------------------------------------------------------------------
# measurement
# --------------------------------------------------------------------------------------------
def test_recurrent_synaptic_operations_count_previous_step_spikes_times_kept_fan_out() -> None:
    model = _strong(RLeakyNet())
    masks = MaskSet(discover(model))
    masks.prune_units("fc1", torch.tensor([0]))
    masks.prune_synapses("lif1.recurrent", torch.eye(6, dtype=torch.bool))  # no self-loops
    masks.apply()
    x = torch.rand(4, 5)
    spikes = hidden_spikes(model, x)  # [4 steps, 4, 6]
    fan_out = (model.lif1.recurrent.weight != 0).sum(0).float()  # kept synapses per column
    previous = spikes[:-1]  # step t reads the spikes of step t-1 (zeros at t = 0)
    expected = float((previous * fan_out).sum()) / x.shape[0]
    work = workload_metrics(model, [x])
    record = work["connections"]["lif1.recurrent"]
    assert record["Effective_ACs"] == pytest.approx(expected)
    assert record["Effective_MACs"] == 0 and record["input"] == "spikes"
    assert record["post"] == "lif1"
    static = static_metrics(model, masks)
    layer = static["layers"]["lif1.recurrent"]
    assert (layer["units_alive"], layer["weights_nonzero"]) == (5, 5 * 5 - 5)
    assert static["layers"]["fc1"]["units_alive"] == 5


# --------------------------------------------------------------------------------------------
# compaction
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,rec", [(RLeakyNet, "lif1.recurrent"), (LinearRecurrence, "rec")])
def test_compaction_removes_rows_and_columns_of_the_recurrent_weight(cls, rec) -> None:
    model = _strong(cls())
    x = torch.rand(4, 5)
    masks = MaskSet(discover(model))
    masks.prune_units("fc1", torch.tensor([1, 4]))
    masks.apply()
    small = compact(model, masks, x)  # verifies equal outputs on x
    modules = dict(small.named_modules())
    assert tuple(modules[rec].weight.shape) == (4, 4) and modules[rec].bias.shape == (4,)
    assert small.fc1.out_features == 4 and small.fc2.in_features == 4
    keep = [0, 2, 3, 5]
    assert torch.equal(modules[rec].weight, dict(model.named_modules())[rec].weight[keep][:, keep])
    with torch.no_grad():
        assert torch.equal(small(x), model(x))
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())


def test_compaction_of_an_rleaky_model_after_a_training_forward() -> None:
    model = RLeakyOverTime()
    x = torch.rand(4, 2, 5)
    model(x).sum().backward()  # RLeaky's state tensors now carry autograd history
    masks = MaskSet(discover(model, x))
    masks.prune_units("fc1", torch.tensor([0, 1, 2]))
    small = compact(model, masks, x)
    assert small.lif1.recurrent.weight.shape == (3, 3)


class ConvRLeakyNet(nn.Module):
    """conv -> RLeaky with a recurrent 3x3 convolution -> flatten -> linear."""

    def __init__(self, steps: int = 3) -> None:
        super().__init__()
        self.steps = steps
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.lif1 = snn.RLeaky(beta=0.9, conv2d_channels=4, kernel_size=3)
        self.flat, self.fc = nn.Flatten(), nn.Linear(4 * 5 * 5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spk, mem = self.lif1.init_rleaky()
        out = []
        for _ in range(self.steps):
            spk, mem = self.lif1(self.conv(x), spk, mem)
            out.append(self.fc(self.flat(spk)))
        return torch.stack(out).mean(0)


def test_convolutional_recurrence_loses_channels_whole() -> None:
    model = _strong(ConvRLeakyNet())
    x = torch.rand(2, 1, 5, 5)
    st = discover(model)
    rec = st["lif1.recurrent"]
    assert (rec.kind, rec.recurrent_of) == ("conv", "conv")
    assert [(p.name, p.block) for p in st["fc"].producers] == [("conv", 25), ("lif1.recurrent", 25)]
    masks = MaskSet(st)
    masks.prune_units("conv", torch.tensor([2]))
    assert not masks.effective_mask("lif1.recurrent")[:, 2].any()
    small = compact(model, masks, x)
    assert small.lif1.recurrent.weight.shape == (3, 3, 3, 3) and small.fc.in_features == 75


def test_one_to_one_recurrence_and_rsynaptic() -> None:
    class Net(nn.Module):
        def __init__(self, neuron: nn.Module) -> None:
            super().__init__()
            self.fc1, self.lif1, self.fc2 = nn.Linear(5, 6), neuron, nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            state = self.lif1.reset_mem()
            out = []
            for _ in range(3):
                state = self.lif1(self.fc1(x), *state)
                out.append(self.fc2(state[0]))
            return torch.stack(out).mean(0)

    x = torch.rand(4, 5) * 3
    # all_to_all=False: a per-neuron V (no weight layer) sliced with the neuron
    one_to_one = _strong(Net(snn.RLeaky(beta=0.9, all_to_all=False, V=torch.rand(6))))
    assert [la.name for la in discover(one_to_one, x).layers] == ["fc1", "fc2"]
    masks = MaskSet(discover(one_to_one, x))
    masks.prune_units("fc1", torch.tensor([0, 1]))
    small = compact(one_to_one, masks, x)
    assert small.lif1.V.shape == (4,) and small.lif1.recurrent.V is small.lif1.V
    synaptic = Net(snn.RSynaptic(alpha=0.8, beta=0.9, linear_features=6))
    st = discover(synaptic, x)  # untraceable (*state): the fallback handles the neuron
    assert st["lif1.recurrent"].recurrent_of == "fc1"
    masks = MaskSet(st)
    masks.prune_units("fc1", torch.tensor([3]))
    assert compact(synaptic, masks, x).lif1.recurrent.weight.shape == (5, 5)


def test_fallback_runs_a_model_that_edits_its_input_in_place() -> None:
    class InPlace(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # untraceable
                x.mul_(2)  # refused on an input that needs grad: recorded without autograd
            return self.b(torch.relu(self.a(x)))

    st = discover(InPlace(), torch.rand(3, 4))
    assert not st.exact and [la.name for la in st.layers] == ["a", "b"]
