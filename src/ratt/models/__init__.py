"""Architectures behind one registry; every model takes [0, 1] inputs and exposes
``model.classifier`` (its last ``nn.Linear``).

Example:
    >>> from ratt.models import create_model
    >>> model = create_model("wrn-16-4", num_classes=10, shape=(3, 32, 32))
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from torch import nn

from ratt.errors import UserError
from ratt.models import resnet, smallcnn, vgg_mobilenet, wrn  # noqa: F401  (fill the registry)
from ratt.models.base import MODELS, NormalizedClassifier

__all__ = ["MODELS", "NormalizedClassifier", "create_model"]


def create_model(
    name: str,
    num_classes: int,
    shape: Sequence[int],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    dropout: float = 0.0,
) -> NormalizedClassifier:
    """Build a registered architecture for inputs of ``shape`` = (C, H, W) in [0, 1].

    ``mean``/``std`` (per channel) default to 0/1, i.e. no normalization. ``dropout`` is
    accepted by architectures that have it (``smallcnn``, ``wrn-D-W``).
    """
    channels, height, _ = shape
    builder = MODELS.get(name)
    extra = {}
    if dropout:
        if "dropout" not in inspect.signature(builder).parameters:
            raise UserError(f"model {name!r} has no dropout; leave model.dropout at 0")
        extra["dropout"] = dropout
    net = builder(num_classes=num_classes, in_channels=channels, input_size=height, **extra)
    mean = mean if mean is not None else (0.0,) * channels
    std = std if std is not None else (1.0,) * channels
    return NormalizedClassifier(net, mean, std)


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's final linear layer: ``model.classifier`` (any model built here)."""
    layer = getattr(model, "classifier", None)
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"{type(model).__name__} has no `.classifier` nn.Linear; pass classifier= explicitly")
    return layer
