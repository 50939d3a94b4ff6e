"""The threat model shared by training attacks and evaluation."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

from ratt.config.sections import NORMS
from ratt.core.units import as_fraction
from ratt.errors import UserError

log = logging.getLogger(__name__)


def reference_norm(norm: str) -> str:
    """A norm as AutoAttack and RobustBench spell it: ``linf`` -> ``Linf``, ``l2`` -> ``L2``."""
    return norm.capitalize()


@dataclass(frozen=True)
class ThreatModel:
    """An L-p ball around each input and the attack budget used to search it.

    Attributes:
        norm: ``"linf"`` or ``"l2"``.
        eps: radius in [0, 1] pixel units (8/255 = 0.0314 for CIFAR).
        step: step size of iterative attacks, same units.
        steps: number of iterations.
        random_start: start from a uniform point in the ball (PGD) instead of x.
        restarts: independent restarts; the per-point worst case is kept.

    AutoAttack reads only ``norm`` and ``eps`` (its budget is fixed by its protocol).

    Example:
        >>> ThreatModel("linf", 4 / 255, 1 / 255, 10).describe()
        'linf eps=4/255 (0.0157) step=1/255 (0.0039) x10'
    """

    norm: str = "linf"
    eps: float = 8 / 255
    step: float = 2 / 255
    steps: int = 10
    random_start: bool = True
    restarts: int = 1

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise UserError(f"norm={self.norm!r}: use {' or '.join(map(repr, NORMS))}")
        if not (math.isfinite(self.eps) and math.isfinite(self.step) and self.eps >= 0 and self.step >= 0):
            raise UserError(f"eps and step must be finite and >= 0, got eps={self.eps}, step={self.step}")
        if self.steps < 0 or self.restarts < 1:
            raise UserError(f"steps must be >= 0 and restarts >= 1 (got {self.steps}, {self.restarts})")

    def with_steps(self, steps: int) -> ThreatModel:
        """The same ball searched with ``steps`` iterations."""
        return replace(self, steps=steps)

    def with_eps(self, eps: float) -> ThreatModel:
        """A ball of radius ``eps`` searched with the same step/eps ratio and step count."""
        ratio = self.step / self.eps if self.eps > 0 else 0.25
        return replace(self, eps=eps, step=eps * ratio)

    def describe(self) -> str:
        """Short human form, e.g. ``linf eps=8/255 (0.0314) step=2/255 (0.0078) x10``."""
        return f"{self.norm} eps={as_fraction(self.eps)} step={as_fraction(self.step)} x{self.steps}"

    def key(self) -> str:
        """A stable string naming every field (used to key cached evaluation results)."""
        return (
            f"{self.norm}-eps{self.eps:.8g}-step{self.step:.8g}-k{self.steps}"
            f"-rs{int(self.random_start)}-r{self.restarts}"
        )


def check_eps_matches(trained: ThreatModel, evaluated: ThreatModel) -> bool:
    """Warn (and return False) when a model trained at one radius or norm is evaluated at another."""
    same = trained.norm == evaluated.norm and math.isclose(trained.eps, evaluated.eps, abs_tol=1e-9)
    if not same:
        log.warning(
            "evaluating at %s eps=%s; the model was trained at %s eps=%s",
            evaluated.norm,
            as_fraction(evaluated.eps),
            trained.norm,
            as_fraction(trained.eps),
        )
    return same
