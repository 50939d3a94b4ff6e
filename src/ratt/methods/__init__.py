"""Training objectives behind one registry (``ratt list methods``).

Names: ``natural``, ``pgd_at``, ``trades``, ``mart``, ``rat_trades``, ``rat_pgd_at``,
``rat_mart``, ``rat_mc``, the single-step ``fgsm``, ``fgsm_rs``, ``n_fgsm``, ``gradalign`` and
``rat_fgsm_rs``, ``rat_n_fgsm``, ``rat_gradalign``; ``awp+NAME`` wraps any of them in AWP.
"""

from __future__ import annotations

from torch import nn

from ratt.attacks.threat import ThreatModel
from ratt.methods import awp, rat_mc, rat_plugin, single_step, standard  # noqa: F401  (fill the registry)
from ratt.methods.base import METHODS, Method, MethodWrapper
from ratt.methods.rat import rat_trades_loss

__all__ = ["METHODS", "Method", "MethodWrapper", "build_method", "rat_trades_loss"]


def build_method(name: str, model: nn.Module, threat: ThreatModel, config, num_classes: int) -> Method:
    """Instantiate the registered method ``name`` (``awp+NAME`` for AWP) for ``model``."""
    return METHODS.get(name)(model, threat, config, num_classes)
