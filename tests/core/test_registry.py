"""The one registry implementation behind models, datasets and pruning methods."""

from __future__ import annotations

import pytest

from devprune.data import registry as data_registry
from devprune.errors import ConfigError
from devprune.models import registry as model_registry
from devprune.pruning import base as pruning_base
from devprune.utils.registry import Registry, did_you_mean


def test_same_object_again_is_a_no_op_another_is_refused() -> None:
    reg: Registry[tuple] = Registry("widget", lambda entry: entry[0])
    reg.add("a", (len, "first"))
    reg.add("a", (len, "again"))
    assert reg["a"] == (len, "again")
    with pytest.raises(ConfigError, match="widget 'a' is already registered by"):
        reg.add("a", (max, "other"))


def test_unknown_names_get_one_message_with_a_suggestion() -> None:
    reg: Registry[int] = Registry("widget")
    reg.add("sprocket", 1)
    with pytest.raises(ConfigError, match=r"unknown widget 'sprockt' \(did you mean "
                                          r"'sprocket'\?\); known: sprocket"):
        reg.lookup("sprockt")
    assert did_you_mean("xyz", ["abc"]) == ""


@pytest.mark.parametrize("table, kind", [
    (model_registry._REGISTRY, "model"),
    (data_registry._REGISTRY, "dataset"),
    (pruning_base._REGISTRY, "pruning method"),
])
def test_models_datasets_and_methods_share_the_registry(table: Registry, kind: str) -> None:
    pruning_base.available_pruners()  # methods register when devprune.pruning is imported
    assert isinstance(table, Registry) and table.kind == kind and len(table) >= 3


def test_unknown_model_and_method_name_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'snn-mlp'"):
        model_registry.build_model("snn-mpl", in_shape=(1, 4, 4), num_classes=2)
    with pytest.raises(ConfigError, match="did you mean 'magnitude'"):
        pruning_base.pruner_config_class("magnitud")
