"""Training objectives behind one registry (``ratt list methods``)."""

from __future__ import annotations

from torch import nn

from ratt.attacks.threat import ThreatModel
from ratt.methods import standard  # noqa: F401  (fills the registry)
from ratt.methods.base import METHODS, Method

__all__ = ["METHODS", "Method", "build_method"]


def build_method(name: str, model: nn.Module, threat: ThreatModel, config, num_classes: int) -> Method:
    """Instantiate the registered method ``name`` for ``model``."""
    return METHODS.get(name)(model, threat, config, num_classes)
