"""Architectures behind one registry, models from user code and timm, and finding any
model's final linear layer. Every model takes [0, 1] inputs.

Example:
    >>> from ratt.models import create_model
    >>> model = create_model("wrn-16-4", num_classes=10, shape=(3, 32, 32))
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from torch import nn

from ratt.errors import UserError
from ratt.models import resnet, smallcnn, vgg_mobilenet, wrn  # noqa: F401  (fill the registry)
from ratt.models.base import MODELS, Normalized, NormalizedClassifier
from ratt.models.classifier import find_classifier
from ratt.models.external import build_external, check_external, is_external, runs_code

__all__ = [
    "MODELS",
    "Normalized",
    "NormalizedClassifier",
    "check_model_name",
    "create_model",
    "find_classifier",
    "runs_code",
]


def check_model_name(name: str) -> None:
    """A registry name, or a user/timm spec that can be built; ``UserError`` otherwise."""
    if is_external(name):
        check_external(name)
    else:
        MODELS.get(name)


def create_model(
    name: str,
    num_classes: int,
    shape: Sequence[int],
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    dropout: float = 0.0,
    kwargs: dict[str, Any] | None = None,
) -> nn.Module:
    """Build a model for inputs of ``shape`` = (C, H, W) in [0, 1].

    ``name`` is a registry name (the architecture, wrapped with its normalization), or a spec
    of :mod:`ratt.models.external` (``file.py:build``, ``package.module:build``,
    ``timm:NAME``, ``torchvision:NAME``) built with ``kwargs``. ``mean``/``std`` (per channel)
    default to 0/1, i.e. no normalization (a user's own model gets none: it is used as it is). ``dropout`` is
    accepted by registry architectures that have it (``smallcnn``, ``wrn-D-W``).
    """
    if is_external(name):
        if dropout:
            raise UserError(f"model.dropout applies to registry models only; give {name} its own")
        return build_external(name, kwargs or {}, num_classes, shape, mean, std)
    if kwargs:
        raise UserError(f"model.kwargs applies to user and timm models; {name!r} takes none")
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
