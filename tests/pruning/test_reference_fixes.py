"""Reference-mode details checked against the authors' code (issue 15), each by hand:
the last conv's rate rule counts fc rows with its own literal, an empty normalisation range
gives 0.5 everywhere, reference presets use the per-slot BCM threshold, the pruned-unit
count is a plain truncation, and the CIFAR "pruned" thresholds come out as the literals."""

import pytest
import torch

from devprune.pruning.dpap import DPAPConfig, DPAPPruner
from devprune.pruning.sdsnn import (
    SDSNNConfig,
    SDSNNPruner,
    bottom_units,
    pruned_entry_limit,
)
from tests.core.models import ChainSNN

X = torch.rand(2, 1, 8, 8)


def _sdsnn(**cfg):
    torch.manual_seed(0)
    model = ChainSNN()
    return model, SDSNNPruner(model, X, SDSNNConfig(mode="reference", **cfg))


# (1) BrainCog cal_prune: the conv branch counts the next layer's rows with `sumbook < 20`,
# the fc branch its own rows with `sumbook < 50`.
def test_last_conv_rule_counts_the_fc_rows_with_its_own_threshold():
    _, p = _sdsnn(count_threshold=1, fc_rate=0.0, conv_rate=0.0, fc_pruned_fraction=0.5,
                  next_pruned_fraction_overrides={"f1": 0.2})
    p.on_epoch_end(0)  # ranges; pruning would start at e > 2C = 2, the gains at 3
    remove = torch.zeros(5, 24, dtype=torch.bool)
    remove[1, :14] = True  # unit 1 keeps 10 of 24
    remove[2, :21] = True  # unit 2 keeps 3 of 24
    p.masks.prune_synapses("f1", remove)
    events = p._prune_and_update_rates(3)
    # f1's own rule: kept < 0.5 * 24 = 12 -> units 1 and 2 count as pruned
    assert events["units_counted_pruned"]["f1"] == 2
    # c2 (the last conv, 6 filters alive) counts f1 with kept < 0.2 * 24 = 4.8: unit 2 only,
    # so its rate grows by exp(0) * 6 / (5 - 1) = 1.5 (with f1's own 12 it would be 6/3 = 2)
    assert p.rates["c2"] == pytest.approx(1.5)
    assert p.rates["c1"] == pytest.approx(4 / 6)  # c1 -> c2: no override, c2 all alive


# (2) The authors' unit(): `if marge != 0: ... else: xx = 0.5 * ones_like(x)`.
def test_equal_range_widths_give_half_per_kept_entry_so_thinned_units_go_first():
    _, p = _sdsnn(count_threshold=1, fc_rate=20.0)
    p.on_epoch_end(0)  # every range is +-max(W): all widths equal, unit() -> 0.5 each
    remove = torch.zeros(5, 24, dtype=torch.bool)
    remove[3, :4] = True  # unit 3 keeps 20 entries: importance 10, the others 12
    p.masks.prune_synapses("f1", remove)
    chosen = p._select_units(p.structure["f1"])
    assert chosen.nonzero().flatten().tolist() == [3]  # int(5 * 20 / 100) = 1


def test_dpap_reference_mode_normalises_an_empty_range_to_half():
    torch.manual_seed(0)
    model = ChainSNN()
    reference = DPAPPruner(model, X, DPAPConfig(mode="reference"))
    default = DPAPPruner(ChainSNN(), X, DPAPConfig(mode="default"))
    assert reference._empty_range == "half" and default._empty_range == "sign"


# (3) Presets that claim the reference setting use its per-slot threshold.
DPAP_REFERENCE_PRESETS = [
    "cifar10-snn-dpap", "mnist-snn-dpap", "nmnist-snn-dpap", "dvs-gesture-snn-dpap",
    "cifar10-vgg16-dpap", "mnist-lenet-dpap", "mnist-mlp-dpap-quick-reference",
    "fashion-mlp-dpap-quick-reference",
]


@pytest.mark.parametrize("preset", DPAP_REFERENCE_PRESETS)
def test_reference_dpap_presets_use_the_per_slot_threshold(preset):
    config = pytest.importorskip("devprune.runner.config")
    cfg = config.load_config(preset).prune.settings["dpap"]
    assert cfg.mode == "reference" and cfg.theta == "per_slot"


# (4) do_pruning_dsd: `rate = int(N * prune / 100)`.
def test_pruned_unit_count_is_a_plain_truncation():
    rate = 0.57 * 100  # 56.99999999999999 in binary floating point
    assert 100 * rate / 100 < 57
    assert int(bottom_units(torch.arange(100.0), rate).sum()) == 56  # not 57
    assert int(bottom_units(torch.arange(300.0), 54.5).sum()) == 163  # int(163.5)


# (5) The literals of BrainCog's CIFAR-10 code: fc_prun rows < 50 of 32768 entries, conv
# filters < 20, and the last conv's count of fc_prun rows < 20.
def test_cifar_pruned_thresholds_are_the_reference_literals():
    config = pytest.importorskip("devprune.runner.config")
    cfg = config.load_config("cifar10-snn-sdsnn").prune.settings["sdsnn"]
    assert pruned_entry_limit(cfg.fc_pruned_fraction, 512 * 8 * 8) == 50
    assert pruned_entry_limit(cfg.conv_pruned_fraction, 128 * 9) == 20
    fans = {"features.conv0.conv": 27, "features.conv4.conv": 2304,
            "features.conv6.conv": 2304, "features.conv7.conv": 4608}
    for name, fraction in cfg.pruned_fraction_overrides.items():
        assert pruned_entry_limit(fraction, fans[name]) == 20
    (fraction,) = cfg.next_pruned_fraction_overrides.values()
    assert pruned_entry_limit(fraction, 32768) == 20
    sr = config.load_config("cifar10-snn-sdsnn-sr").prune.settings["sdsnn"]
    assert pruned_entry_limit(sr.fc_pruned_fraction, 32768) == 20
    mnist = config.load_config("mnist-snn-sdsnn").prune.settings["sdsnn"]
    assert pruned_entry_limit(mnist.fc_pruned_fraction, 40 * 7 * 7) == 20
    assert pruned_entry_limit(mnist.conv_pruned_fraction, 15 * 9) == 10


def test_pruned_entry_limit_absorbs_float_rounding_only():
    assert 0.07 * 100 > 7  # 7.000000000000001: "kept < it" would count a unit keeping 7
    assert pruned_entry_limit(0.07, 100) == 7.0
    assert pruned_entry_limit(0.0015259, 32768) > 50  # a rounded decimal is not the literal
