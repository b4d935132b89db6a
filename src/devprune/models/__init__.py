"""Model zoo: ``build_model(name, in_shape=..., num_classes=...)`` for SNNs and ANNs.

Importing this package registers every zoo model; see :func:`list_models`.
"""

# importing the zoo modules registers their models
from devprune.models import (  # noqa: F401
    ann,
    resnet,
    sew_resnet,
    snn_braincog,
    snn_mlp,
    snn_small,
)
from devprune.models.losses import cross_entropy_loss, get_loss, rate_mse_loss
from devprune.models.registry import build_model, list_models, register_model

__all__ = [
    "build_model",
    "cross_entropy_loss",
    "get_loss",
    "list_models",
    "rate_mse_loss",
    "register_model",
]
